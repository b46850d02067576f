"""LoRA learner ranks (peft on DeepSpeed ZeRO-2, gloo) on the real tiny Qwen2.5-VL (slow)."""

import glob

import pytest
import ray
import torch
from safetensors.torch import load_file

from actors.learner import LearnerGroup
from learners.config import LearnerConfig, LoraConfig
from learners.logprobs import media_tensors, scored_sequence, sequence_logprobs

from learner_batch import grpo_batch

pytestmark = pytest.mark.slow


def _cfg(**kw):
    base = dict(num_ranks=1, zero_stage=2, lr=1e-2, micro_batch_size=3, beta=0.04, grad_clip=100.0,
                lora=LoraConfig(rank=4, alpha=8.0))
    return LearnerConfig(**{**base, **kw})


def _kill(group):
    for r in group.ranks:
        ray.kill(r)


def _plain_model_logprobs(model_dir, seqs, media):
    """Log-probs under a plain transformers model loaded from `model_dir` (no peft, no DeepSpeed), with the
    engine's bias on the banned tokens, as the learner scores."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rollout.engine import banned_token_ids

    proc = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    tensors = {k: media_tensors(proc, r) for k, r in media.items()}
    scored = [scored_sequence(model.config, s.prompt_token_ids, s.token_ids, tensors[s.prompt_id]) for s in seqs]
    with torch.no_grad():
        logps = sequence_logprobs(model, scored, proc.tokenizer.pad_token_id,
                                  banned_ids=banned_token_ids(proc.tokenizer))
    return [lp.tolist() for lp in logps]


def test_lora_moves_the_policy_towards_the_advantage_and_final_is_the_merged_model(
        ray_local, tiny_model_dir, tmp_path):
    _, seqs, media = grpo_batch(tiny_model_dir, groups=2, g=3, seed=7, media_types=("image", "video"))
    group = LearnerGroup(str(tiny_model_dir), _cfg(), max_tokens=8)
    before = group.score(seqs, media)
    steps = [group.train_step(seqs, media) for _ in range(4)]
    after = group.score(seqs, media)
    assert steps[0]["kl"] < 1e-9 < steps[-1]["kl"]  # the reference is the model with adapters disabled
    moved = [sum(a) / len(a) - sum(b) / len(b) for a, b in zip(after, before)]
    # the objective rose: responses gained mean log-prob in proportion to their advantage
    assert sum(m * s.advantage for m, s in zip(moved, seqs)) > 0.1, moved

    group.save_hf(str(tmp_path / "final"))
    _kill(group)
    original = load_file(f"{tiny_model_dir}/model.safetensors")
    merged = load_file(f"{tmp_path}/final/model.safetensors")
    assert merged.keys() == original.keys()  # a plain model: no adapter tensors, checkpoint names
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[q_proj], original[q_proj])  # adapted layers carry their adapters' product
    assert torch.equal(merged["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
    assert torch.equal(merged["visual.merger.mlp.0.weight"], original["visual.merger.mlp.0.weight"])
    plain = _plain_model_logprobs(tmp_path / "final", seqs, media)
    for ours, theirs in zip(after, plain, strict=True):
        assert ours == pytest.approx(theirs, abs=2e-5)  # transformers scores the merged dir as the learner did


@pytest.mark.parametrize("ranks", [1, 2])
def test_lora_fold_keeps_the_policy_anchors_kl_there_and_resumes_from_an_adapter_checkpoint(
        ray_local, tiny_model_dir, tmp_path, ranks):
    _, seqs, media = grpo_batch(tiny_model_dir, seed=3)
    cfg = _cfg(lr=3e-3, num_ranks=ranks)
    group = LearnerGroup(str(tiny_model_dir), cfg, max_tokens=8)
    for _ in range(3):
        group.sft_step(seqs, media)
    assert group.train_step(seqs, media)["kl"] > 1e-4  # anchored at the start weights (adapters off)
    policy = group.score(seqs, media)
    group.reset_reference()  # the adapters fold into the base, and restart at zero
    for a, b in zip(group.score(seqs, media), policy):
        assert a == pytest.approx(b, abs=1e-5)  # the policy itself did not move
    assert group.train_step(seqs, media)["kl"] < 1e-9  # the reference IS the policy the step started from
    group.save_state(str(tmp_path), "learner")
    expected = group.train_step(seqs, media)
    _kill(group)

    (states,) = glob.glob(f"{tmp_path}/learner/*model_states.pt")
    saved = torch.load(states, weights_only=False)
    assert saved["module"] and all("lora_" in k for k in saved["module"])  # the adapters, not the base
    assert saved["frozen_param_fragments"] is None  # ZeRO-2 keeps the frozen base out too
    resumed = LearnerGroup(str(tiny_model_dir), cfg, max_tokens=8)
    resumed.load_state(str(tmp_path), "learner")
    again = resumed.train_step(seqs, media)
    _kill(resumed)
    assert expected["kl"] > 1e-9
    for key in ("kl", "loss", "grad_norm"):
        assert again[key] == pytest.approx(expected[key], rel=1e-4), key
