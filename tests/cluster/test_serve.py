"""The Serve app over real HTTP, on the tiny model: one replica for the module (an engine starts in ~20 s).

Every refusal is checked for its status AND for a message naming what was wrong; paths and file:// URLs
point at a real, valid PNG on this disk, so a server that opened them would answer 200 instead of 400.
"""

import asyncio
import base64
import dataclasses
import functools
import http.server
import io
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from cluster.config import QThinkConfig, RolloutConfig, ServeConfig
from cluster.ray_cluster import free_port
from cluster.serve import score_summary, start
from cluster.serve_requests import ApiError, image_url_bytes
from rewards import PRESETS
from rollout.video import encode_video

pytestmark = pytest.mark.slow

LIMITS = ServeConfig(min_replicas=1, max_replicas=1, max_body_bytes=256 * 1024, max_frames=16, max_samples=4)



def _png(seed: int = 0, size: int = 112) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def url(ray_local, tiny_model_dir):
    from ray import serve

    cfg = QThinkConfig(rollout=RolloutConfig(max_tokens=16, max_model_len=1024),
                       serve=dataclasses.replace(LIMITS, port=free_port()))
    base = start(str(tiny_model_dir), cfg)
    yield base
    serve.shutdown()


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    # 112 px wide: decord2 fails to copy frames at some native widths (96, 144, ...; rollout/video.py).
    frames = np.random.default_rng(1).integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    encode_video(frames, path)
    return path.read_bytes()


def _refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    for word in words:
        assert word in message, message


def test_health_and_models(client, tiny_model_dir):
    assert client.get("/healthz").json()["status"] == "ok"
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == tiny_model_dir.name


def test_score_an_image_as_base64_json(client, tiny_model_dir):
    body = client.post("/v1/score", json={"image": _b64(_png()), "samples": 3, "return_reasoning": True}).json()
    assert len(body["samples"]) == len(body["reasoning"]) == 3
    assert body["parse_failures"] == sum(s is None for s in body["samples"])
    if body["score"] is not None:  # random weights: the answers may not parse
        assert body["score"] == pytest.approx(np.mean([s for s in body["samples"] if s is not None]))
    assert body["model"] == tiny_model_dir.name and body["latency_ms"] > 0


def test_score_a_video_as_multipart_upload(client, mp4):
    response = client.post("/v1/score", files={"video": ("clip.mp4", mp4, "video/mp4")}, data={"num_frames": "4"})
    body = response.json()
    assert response.status_code == 200, body
    assert len(body["samples"]) == 1 and body["reasoning"] is None


def test_chat_completion_with_an_image_data_url_through_the_openai_client(url):
    from openai import OpenAI

    chat = OpenAI(base_url=f"{url}/v1", api_key="x").chat.completions.create(
        model="tiny", n=2, temperature=0.7, top_p=0.9, max_tokens=8,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(_png())}"}},
            {"type": "text", "text": "Rate the quality of this picture."}]}],
    )
    assert chat.object == "chat.completion" and len(chat.choices) == 2
    assert all(c.message.role == "assistant" and c.finish_reason in ("stop", "length") for c in chat.choices)
    assert chat.usage.prompt_tokens > 16  # 16 image tokens for 112 x 112, plus the text
    assert 0 < chat.usage.completion_tokens <= 16


def test_malformed_json_bad_base64_and_non_image_bytes_are_400(client):
    _refused(client.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"}),
             400, "malformed JSON")
    _refused(client.post("/v1/score", json={"image": "***"}), 400, "image", "base64")
    _refused(client.post("/v1/score", json={"image": _b64(b"hello, not an image")}), 400, "not_image")
    _refused(client.post("/v1/score", json={"image": _b64(_png()), "samplez": 2}), 400, "samplez")
    _refused(client.post("/v1/score", json={}), 400, "exactly one")


def test_limits_body_size_frames_samples_and_context(client, mp4):
    _refused(client.post("/v1/score", json={"image": "A" * (300 * 1024)}), 413, "max_body_bytes")
    _refused(client.post("/v1/score", json={"video": _b64(mp4), "num_frames": 100}), 400, "max_frames")
    _refused(client.post("/v1/score", json={"image": _b64(_png()), "samples": 5}), 400, "max_samples")
    _refused(client.post("/v1/score", json={"video": _b64(_png())}), 400, "not_video")
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100_000}
    _refused(client.post("/v1/chat/completions", json=chat), 400, "max_tokens", "max_model_len")
    chat = {"messages": [{"role": "user", "content": "image quality " * 1000}]}  # ~2000 tokens > 1024
    _refused(client.post("/v1/chat/completions", json=chat), 400, "engine refused")
    _refused(client.post("/v1/chat/completions", json={"messages": [{"role": "tool", "content": "x"}]}), 400, "role")


def test_a_path_in_image_url_is_refused_not_opened(url, client, tmp_path):
    from openai import BadRequestError, OpenAI

    real = tmp_path / "real.png"
    real.write_bytes(_png())  # a valid image: opening it would have succeeded
    openai = OpenAI(base_url=f"{url}/v1", api_key="x")
    for image_url in (f"file://{real}", str(real), "file:///etc/passwd", "http://127.0.0.1:9/x.png"):
        with pytest.raises(BadRequestError) as refused:
            openai.chat.completions.create(model="tiny", max_tokens=4, messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_url}}]}])
        assert "image_url" in refused.value.body["message"]
    _refused(client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "n": 9}),
             400, "max_samples")


def test_remote_urls_are_fetched_only_when_allowed(tmp_path):
    (tmp_path / "a.png").write_bytes(_png())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        image = f"http://127.0.0.1:{server.server_address[1]}/a.png"
        allowed = QThinkConfig(serve=ServeConfig(allow_remote_urls=True))
        assert asyncio.run(image_url_bytes(image, allowed)) == _png()
        small = QThinkConfig(serve=ServeConfig(allow_remote_urls=True, max_body_bytes=100))
        with pytest.raises(ApiError, match="max_body_bytes"):
            asyncio.run(image_url_bytes(image, small))
        with pytest.raises(ApiError, match="disabled"):
            asyncio.run(image_url_bytes(image, QThinkConfig()))
        server.shutdown()


def test_preresq_answers_come_back_as_named_aspects():
    answer = "<think>sharp</think><answer>4.00\n3.00\n5.00\n2.00\n1.00\n</answer>"
    summary = score_summary([answer, "no answer"], PRESETS["preresq-iqa"])
    assert summary["aspects"] == {"saturation": 4.0, "granularity": 3.0, "sharpness": 5.0, "foreground": 2.0,
                                  "background": 1.0}
    assert summary["samples"][1] is None and summary["parse_failures"] == 1
