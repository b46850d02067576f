"""The Ray Serve app: a trained judge behind `/v1/score` and an OpenAI-compatible `/v1/chat/completions`.

Each `QualityJudge` replica owns one vLLM `AsyncLLM` built with the rollout engine's settings and the same
banned pad tokens (rollout/engine.py), so a served model runs exactly as it did in evaluation, and the
requests in flight on a replica batch inside its one engine. Serve's autoscaler adds and removes replicas
(each with its own engine) between `serve.min_replicas` and `serve.max_replicas` on the ongoing-request
count. `ray.serve.llm` is not used: it needs `ray[llm]`, which pins another vLLM (docs/design.md, "Environment notes").

Three ways in, one app: `serve_main` (`qthink serve`, blocking, local Ray), `start` (tests and the load
benchmark) and `app_builder` (`serve deploy configs/serve.yaml` on a cluster). Request checking and media
decoding live in cluster/serve_requests.py; answer parsing is the preset's own (rewards/).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import time
import uuid
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve
from ray.serve import metrics

from cluster.config import ENGINE_DTYPE, QThinkConfig, load_config
from cluster.serve_auth import authorize, check_exposure, load_api_keys
from cluster.serve_requests import (
    ApiError,
    ChatRequest,
    chat_messages,
    decode_image,
    image_url_bytes,
    parse_json,
    read_body,
    score_input,
    upload_request,
    validated,
)
from rewards import Preset, get_preset
from rollout.engine import banned_token_ids, engine_args, sampling_params, vllm_input

MAX_CHAT_IMAGES = 4  # the engine's limit_mm_per_prompt (rollout.engine.engine_args' max_media)


app = FastAPI(title="qthink", description="Visual quality judged with reasoning (Qwen2.5-VL + GRPO).")


# Helpers the replica calls sit ABOVE the deployment: `@serve.deployment` pickles the class by value at
# decoration time, and a global defined later would be missing in the replica (NameError).
def model_name(model_dir: str, cfg: QThinkConfig) -> str:
    return cfg.serve.model_name or Path(model_dir).resolve().name


def score_summary(texts: list[str], preset: Preset) -> dict:
    """Parse responses with the preset's own rule; the score is their group score, as evaluation and
    training metrics compute it (`ParsedResponses.group_scores`), or None when no answer parsed."""
    parsed = preset.parse(texts)
    ok = ~parsed.failed
    clipped = np.clip(parsed.pred, 1.0, 5.0)
    scores = clipped[ok]
    summary = {
        "score": float(parsed.group_scores(len(texts))[0]) if ok.any() else None,
        "spread": float(scores.std()) if ok.any() else None,
        "samples": [float(p) if good else None for p, good in zip(clipped, ok)],
        "parse_failures": int((~ok).sum()),
    }
    if preset.aspects:
        means = parsed.aspects[ok].mean(axis=0) if ok.any() else [None] * len(preset.aspects)
        summary["aspects"] = {name: None if v is None else float(v) for name, v in zip(preset.aspects, means)}
    return summary


def chat_completion(out, model: str) -> dict:
    """vLLM's output in the OpenAI chat.completion shape."""
    completion_tokens = sum(len(c.token_ids) for c in out.outputs)
    prompt_tokens = len(out.prompt_token_ids)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text},
                     "finish_reason": c.finish_reason, "logprobs": None} for c in out.outputs],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


@app.exception_handler(ApiError)
async def _refusal(request: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


@serve.deployment
@serve.ingress(app)
class QualityJudge:
    def __init__(self, model_dir: str, cfg: QThinkConfig):
        import torch
        from transformers import AutoProcessor
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if not cfg.serve.gpus_per_replica:
            # vLLM-CPU's "auto" binding puts every engine of the machine on the same cores; unbound, the OS
            # spreads replicas, and each engine keeps the OMP_NUM_THREADS Ray gives an actor of its CPUs.
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
            torch.set_num_threads(max(1, int(cfg.serve.cpus_per_replica)))
        self.cfg, self.preset = cfg, get_preset(cfg.reward.preset)
        self.api_keys = load_api_keys(cfg.serve.api_keys_file)
        self.page_html = importlib.resources.files("cluster").joinpath("serve_page.html").read_text()
        self.model_name = model_name(model_dir, cfg)
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.banned_ids = banned_token_ids(self.processor.tokenizer)
        dtype = ENGINE_DTYPE[cfg.model.dtype]
        args = engine_args(model_dir, cfg.rollout, dtype, max_media=MAX_CHAT_IMAGES)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        # Serve itself counts requests by route and status and times them (ray_serve_num_http_requests,
        # ray_serve_http_request_latency_ms); these say what the model did. Exported with a `ray_` prefix.
        self.generated_tokens = metrics.Counter("qthink_generated_tokens", "tokens the engine generated",
                                                tag_keys=("route",))
        self.scored = metrics.Counter("qthink_scored_items", "images and videos scored", tag_keys=("media_type",))
        self.parse_failures = metrics.Counter("qthink_parse_failures", "score samples whose answer did not parse")

    @app.get("/", response_class=HTMLResponse)
    async def page(self) -> str:
        """The page a person scores a picture with (cluster/serve_page.html); it holds no model data, so it
        needs no key: it asks for one and sends it with its API calls."""
        return self.page_html

    @app.get("/healthz")
    async def healthz(self):
        try:
            await self.engine.check_health()  # raises once the engine process is dead
        except Exception as error:
            return JSONResponse(ApiError(503, f"engine unhealthy: {error}", "server_error").body(), status_code=503)
        return {"status": "ok", "model": self.model_name}

    @app.get("/v1/models")
    async def models(self, request: Request) -> dict:
        authorize(request.headers.get("authorization"), self.api_keys)
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": 0,
                                            "owned_by": "qthink"}]}

    @app.post("/v1/score")
    async def score(self, request: Request) -> dict:
        authorize(request.headers.get("authorization"), self.api_keys)
        return await self._within_timeout(self._score(request))

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> dict:
        authorize(request.headers.get("authorization"), self.api_keys)
        return await self._within_timeout(self._chat(request))

    async def _score(self, request: Request) -> dict:
        """Score one image or video: the mean of `samples` parsed answers (greedy when 1), their spread, and
        the responses themselves on request."""
        started = time.perf_counter()
        body = await read_body(request, self.cfg.serve.max_body_bytes)
        item = await score_input(request, body, self.cfg.serve.max_samples)
        # decoding off the event loop
        rollout = await asyncio.to_thread(upload_request, item, self.preset, self.cfg, "score")
        prompt = vllm_input(rollout, self.processor)
        # One sample is greedy, as evaluation scores (cluster/evaluation.py); several use the config's sampling.
        overrides = {"temperature": 0.0} if item.samples == 1 else {}
        out = await self._generate(prompt, item.samples, None, overrides, "/v1/score")
        texts = [c.text for c in out.outputs]
        summary = score_summary(texts, self.preset)
        self.scored.inc(tags={"media_type": item.media_type})
        if summary["parse_failures"]:  # a Ray counter takes only increments > 0
            self.parse_failures.inc(summary["parse_failures"])
        return {**summary, "reasoning": texts if item.return_reasoning else None,
                "model": self.model_name, "latency_ms": round(1000 * (time.perf_counter() - started), 2)}

    async def _chat(self, request: Request) -> dict:
        body = await read_body(request, self.cfg.serve.max_body_bytes)
        chat = validated(ChatRequest, parse_json(body))
        if chat.stream:
            raise ApiError(400, "stream=true is not supported by this server")
        if chat.n > self.cfg.serve.max_samples:
            raise ApiError(400, f"n={chat.n} exceeds max_samples={self.cfg.serve.max_samples}")
        max_tokens = chat.max_completion_tokens or chat.max_tokens
        if max_tokens and max_tokens > self.cfg.rollout.max_model_len:  # vLLM would silently cut it to fit
            raise ApiError(400, f"max_tokens={max_tokens} exceeds the context, max_model_len="
                                f"{self.cfg.rollout.max_model_len}")
        messages, urls = chat_messages(chat)
        if len(urls) > MAX_CHAT_IMAGES:
            raise ApiError(400, f"{len(urls)} images in one chat; at most {MAX_CHAT_IMAGES}")
        images = [await asyncio.to_thread(decode_image, await image_url_bytes(url, self.cfg), self.cfg) for url in urls]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt = {"prompt": text, "multi_modal_data": {"image": images}} if images else {"prompt": text}
        overrides = {k: v for k, v in (("temperature", chat.temperature), ("top_p", chat.top_p),
                                       ("max_tokens", max_tokens)) if v is not None}
        out = await self._generate(prompt, chat.n, chat.seed, overrides, "/v1/chat/completions")
        return chat_completion(out, self.model_name)

    async def _generate(self, prompt: dict, n: int, seed: int | None, overrides: dict, route: str):
        """One engine request; engine-side validation errors (prompt too long, max_tokens past the context)
        are the client's (400)."""
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        params = sampling_params(self.cfg.rollout, self.banned_ids, n, seed, **overrides)
        params.output_kind = RequestOutputKind.FINAL_ONLY  # no per-token partial outputs to skip over
        params.logprobs = None  # the learner's per-token logprobs cost ~20% of a tiny model's decode step here
        final = None
        try:
            async for out in self.engine.generate(prompt, params, request_id=uuid.uuid4().hex):
                final = out
        except (VLLMClientError, ValueError) as error:
            raise ApiError(400, f"the engine refused the request: {error}") from None
        if tokens := sum(len(c.token_ids) for c in final.outputs):
            self.generated_tokens.inc(tokens, tags={"route": route})
        return final

    async def _within_timeout(self, work):
        """`serve.request_timeout_s` for the whole request, body upload included; a generation cut short is
        aborted in the engine (AsyncLLM aborts a request whose generator is cancelled)."""
        try:
            return await asyncio.wait_for(work, self.cfg.serve.request_timeout_s)
        except TimeoutError:
            raise ApiError(408, f"request took longer than request_timeout_s={self.cfg.serve.request_timeout_s}",
                           "timeout") from None


# ---- building and running the app -------------------------------------------------------------------

def build_app(model_dir: str, cfg: QThinkConfig):
    """The bound application: autoscaling bounds and per-replica resources from `cfg.serve`."""
    s = cfg.serve
    deployment = QualityJudge.options(
        autoscaling_config={"min_replicas": s.min_replicas, "max_replicas": s.max_replicas,
                            "target_ongoing_requests": s.target_ongoing_requests,
                            "upscale_delay_s": s.upscale_delay_s, "downscale_delay_s": s.downscale_delay_s,
                            "look_back_period_s": s.look_back_period_s},
        max_ongoing_requests=s.max_ongoing_requests,
        max_surge_percent=s.max_surge_percent,
        ray_actor_options={"num_cpus": s.cpus_per_replica, "num_gpus": s.gpus_per_replica},
    )
    return deployment.bind(str(Path(model_dir).resolve()), cfg)


def app_builder(args: dict):
    """`serve deploy` entry (import_path `cluster.serve:app_builder`): args `model` (a model dir every node
    can read), optional `config` (a qthink YAML) and `overrides` (dotted `section.key=value` strings)."""
    if "model" not in args:
        raise ValueError("serve app args need `model`: the exported model dir")
    return build_app(args["model"], load_config(args.get("config"), args.get("overrides", []), model_dir=args["model"]))


APP_NAME = "qthink"


def start(model_dir: str, cfg: QThinkConfig) -> str:
    """Start Serve's HTTP proxy on `serve.host:serve.port`, deploy the app, wait until it is running; the base
    URL. Ray must already be initialised."""
    check_exposure(cfg)
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port})
    serve.run(build_app(model_dir, cfg), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{cfg.serve.host}:{cfg.serve.port}"


def serve_main(model_dir: str, config_path: str | None = None, overrides: list[str] = ()) -> int:
    """`qthink serve --model DIR [--config serve.yaml] [overrides]`: serve locally until Ctrl-C."""
    from cluster.ray_cluster import init_ray

    cfg = load_config(config_path, overrides, model_dir=model_dir)
    init_ray(cfg.cluster)
    url = start(model_dir, cfg)
    print(f"qthink serving {model_name(model_dir, cfg)} at {url}  (POST /v1/score, POST /v1/chat/completions, "
          f"GET /v1/models, GET /healthz, the page at /); Ctrl-C stops", flush=True)
    if cfg.cluster.metrics_export_port:
        print(f"metrics (Prometheus): http://127.0.0.1:{cfg.cluster.metrics_export_port}/metrics", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0
