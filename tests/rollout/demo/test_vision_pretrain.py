import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rollout.demo.content import load_source
from rollout.demo.synthetic import rank_pairs
from rollout.demo.vision_pretrain import ensure_pretrained_tiny, pair_loss, pretrain_vision_tower


def test_pair_loss_counts_pairs_in_order_and_penalises_the_reversed_order():
    mos = torch.tensor([4.0, 2.0, 1.5, 3.5])
    right = torch.tensor([1.0, -1.0, -1.5, 0.5])
    loss_right, acc_right = pair_loss(right, mos)
    loss_wrong, acc_wrong = pair_loss(-right, mos)
    assert acc_right.item() == 1.0 and acc_wrong.item() == 0.0
    assert loss_wrong.item() > loss_right.item()


def test_pretraining_fits_a_fixed_batch_through_the_vision_tower_only(tiny_model_dir):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    text_before = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    vision_before = {k: v.clone() for k, v in model.model.visual.state_dict().items()}
    batch = rank_pairs([load_source("camera"), load_source("coffee")], 8, 56, np.random.default_rng(0))
    torch.manual_seed(0)
    curve = pretrain_vision_tower(model, processor, lambda: batch, steps=200)
    assert curve[-1]["loss"] < 0.5 * curve[0]["loss"]  # the first entry averages steps 1-100
    assert curve[-1]["pair_accuracy"] == 1.0
    text_after = model.model.language_model.state_dict()
    assert all(torch.equal(text_before[k], text_after[k]) for k in text_before)
    vision_after = model.model.visual.state_dict()
    assert sum(not torch.equal(vision_before[k], vision_after[k]) for k in vision_before) > len(vision_before) // 2


@pytest.mark.slow
def test_pretrained_tiny_is_cached_and_keeps_the_random_language_model(tmp_path, tiny_model_dir):
    out = ensure_pretrained_tiny(tmp_path / "pt", seed=0, shape="tiny", steps=20, data_seed=0)
    record = json.loads((out / "vision_pretrain.json").read_text())
    assert record["steps"] == 20 and len(record["curve"]) == 1
    # only training-split pictures: none of the benchmark's held-out sources
    from rollout.demo.synthetic import held_out_sources
    assert not set(record["sources"]) & set(held_out_sources(0))
    plain, trained = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert plain.keys() == trained.keys()
    changed = {k for k in plain if not torch.equal(plain[k], trained[k])}
    assert changed and all(k.startswith("visual.") for k in changed)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert ensure_pretrained_tiny(tmp_path / "pt", seed=0, shape="tiny", steps=20, data_seed=0) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
