"""What the learner sends in a weight sync: every weight in checkpoint names, whole layers per bucket."""

import pytest
import torch

from learners.weights import WeightSender, full_state_dict
from rollout.weight_transfer import layer_of


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)


def test_the_sync_carries_the_checkpoint_names_in_buckets_of_whole_layers(model, tiny_model_dir):
    from safetensors import safe_open

    sender = WeightSender(model, zero_stage=0, rank=0, bucket_bytes=64 << 10)
    with safe_open(f"{tiny_model_dir}/model.safetensors", "pt") as f:
        saved = set(f.keys())  # what save_pretrained wrote: the names vLLM loads
    names = [m.name for m in sender.metas]
    assert set(names) == saved == set(full_state_dict(model, 0))  # a tied lm_head is not sent twice
    info = sender.update_info()
    assert sorted(k for b in info["buckets"] for k in b) == list(range(len(names))) and len(info["buckets"]) > 2
    layers = {}
    for b, bucket in enumerate(info["buckets"]):
        for k in bucket:
            layers.setdefault(layer_of(names[k]) or names[k], set()).add(b)
    assert all(len(held) == 1 for held in layers.values())  # no layer split over two rounds


def test_a_frozen_vision_tower_is_not_sent(model):
    everything = WeightSender(model, zero_stage=0, rank=0, bucket_bytes=1 << 20).metas
    sent = WeightSender(model, zero_stage=0, rank=0, bucket_bytes=1 << 20, skip_vision=True).metas
    assert any(m.name.startswith("visual.") for m in everything)
    assert [m for m in everything if not m.name.startswith("visual.")] == sent
