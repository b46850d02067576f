import hashlib

import numpy as np
import pytest
import torch

from rollout.demo.tiny_model import SPECIAL_TOKENS, make_tiny_model
from rollout.prompts import quality_messages


def _hashes(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_same_seed_gives_byte_identical_files_and_another_seed_other_weights(tmp_path):
    a = _hashes(make_tiny_model(tmp_path / "a", seed=3))
    b = _hashes(make_tiny_model(tmp_path / "b", seed=3))
    c = _hashes(make_tiny_model(tmp_path / "c", seed=4))
    assert a == b
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= set(a)
    assert a["model.safetensors"] != c["model.safetensors"]
    assert a["tokenizer.json"] == c["tokenizer.json"]  # the tokenizer does not depend on the seed


def test_tokenizer_carries_qwen_special_tokens_as_single_ids(tiny_model_dir):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_model_dir).tokenizer
    for t in SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, t
    text = "<think>sharp and clear</think><answer>4.25</answer>"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level BPE round-trips any text


@pytest.mark.parametrize("media", ["image", "video"])
def test_transformers_generates_for_image_and_video(tiny_model_dir, media):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    rng = np.random.default_rng(0)
    text = proc.apply_chat_template(quality_messages(media), add_generation_prompt=True, tokenize=False)
    if media == "image":
        inputs = proc(text=[text], images=[rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)], return_tensors="pt")
        assert inputs["image_grid_thw"].tolist() == [[1, 8, 8]]  # 112 px = 8x8 patches of 14
    else:
        frames = rng.integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
        inputs = proc(text=[text], videos=[frames], return_tensors="pt", do_sample_frames=False)
        assert inputs["video_grid_thw"].tolist() == [[2, 8, 8]]  # 4 frames / temporal patch 2
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 6
