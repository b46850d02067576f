"""DeepSpeed learner ranks as Ray actors on gloo, with the real tiny Qwen2.5-VL (slow)."""

import dataclasses
import math
import tempfile

import pytest
import ray
import torch
from safetensors.torch import load, load_file

from actors.learner import LearnerGroup
from learners.config import LearnerConfig

from learner_batch import grpo_batch

pytestmark = pytest.mark.slow


def _cfg(**kw):
    base = dict(num_ranks=1, zero_stage=2, lr=1e-3, micro_batch_size=2, beta=0.04, grad_clip=100.0)
    return LearnerConfig(**{**base, **kw})


def _weights(group) -> dict:
    """The learner's weights as `final/` holds them (the same gather the weight sync sends)."""
    with tempfile.TemporaryDirectory() as out:
        group.save_hf(out)
        return load_file(f"{out}/model.safetensors")


def _step_and_weights(model_dir, cfg, seqs, media):
    group = LearnerGroup(str(model_dir), cfg, max_tokens=8)
    metrics = group.train_step(seqs, media)
    weights = _weights(group)
    for r in group.ranks:
        ray.kill(r)
    return metrics, weights


def test_two_ranks_zero2_equal_one_rank_on_the_whole_batch_and_zero3_gathers_the_same(ray_local, tiny_model_dir):
    _, seqs, media = grpo_batch(tiny_model_dir)
    one, w1 = _step_and_weights(tiny_model_dir, _cfg(num_ranks=1), seqs, media)
    two, w2 = _step_and_weights(tiny_model_dir, _cfg(num_ranks=2), seqs, media)
    three, w3 = _step_and_weights(tiny_model_dir, _cfg(num_ranks=2, zero_stage=3), seqs, media)
    # The global gradient norm sees any normalisation error across ranks/micro-batches (Adam would hide it).
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5, abs=1e-7)
    assert one["response_tokens"] == two["response_tokens"] == sum(len(s.token_ids) for s in seqs)
    original = load(open(f"{tiny_model_dir}/model.safetensors", "rb").read())
    assert set(w1) == set(original)  # exported in checkpoint names, as save_pretrained writes them
    moved = 0
    for k in w1:
        # 1% of lr: Adam amplifies fp32 reduction-order noise where |g| ~ eps
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(w3[k], w2[k], atol=1e-5, rtol=1e-4)
        moved += int(not torch.equal(w1[k], original[k]))
    assert moved > len(w1) // 2  # the step really changed the weights


def test_sft_steps_lower_the_loss_at_their_stage_schedule_and_grpo_starts_its_own(ray_local, tiny_model_dir):
    _, seqs, media = grpo_batch(tiny_model_dir, seed=1)
    group = LearnerGroup(str(tiny_model_dir), _cfg(num_ranks=2, lr=1e-6, beta=0.0), max_tokens=8)
    group.start_stage(3e-3, 2, "cosine", 5, restart=True)  # SFT: 2 warmup steps, then a cosine over the other 3
    steps = [group.sft_step(seqs, media) for _ in range(5)]
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert [m["lr"] for m in steps] == pytest.approx([1.5e-3, 3e-3, 3e-3, 2.25e-3, 0.75e-3])  # DeepSpeed steps it
    group.start_stage(1e-4, 0, "constant", 3, restart=True)  # GRPO at its own rate, not at the tail of SFT's cosine
    assert group.train_step(seqs, media)["lr"] == pytest.approx(1e-4)
    for r in group.ranks:
        ray.kill(r)


def test_frozen_vision_tower_stays_put_while_the_language_model_trains(ray_local, tiny_model_dir):
    _, seqs, media = grpo_batch(tiny_model_dir, seed=2)
    cfg = _cfg(num_ranks=1, freeze_vision=True, gradient_checkpointing=True, beta=0.0)
    _, weights = _step_and_weights(tiny_model_dir, cfg, seqs, media)
    original = load(open(f"{tiny_model_dir}/model.safetensors", "rb").read())
    vision = [k for k in weights if k.startswith("visual.")]
    language = [k for k in weights if k.startswith("model.layers.")]
    assert vision and language
    assert all(torch.equal(weights[k], original[k]) for k in vision)
    assert any(not torch.equal(weights[k], original[k]) for k in language)


@pytest.mark.parametrize("ranks,zero_stage", [(1, 2), (2, 3)])
def test_reference_reset_anchors_kl_at_the_current_policy_and_survives_a_checkpoint(
        ray_local, tiny_model_dir, tmp_path, ranks, zero_stage):
    _, seqs, media = grpo_batch(tiny_model_dir, seed=3)
    cfg = _cfg(num_ranks=ranks, zero_stage=zero_stage, lr=3e-3)
    group = LearnerGroup(str(tiny_model_dir), cfg, max_tokens=8)
    for _ in range(3):
        group.sft_step(seqs, media)  # the policy leaves the start weights, as SFT before GRPO does
    assert group.train_step(seqs, media)["kl"] > 1e-3  # still anchored at the start weights
    group.reset_reference()
    assert group.train_step(seqs, media)["kl"] < 1e-7  # the reference IS the policy the step started from
    group.save_state(str(tmp_path), "learner")
    expected = group.train_step(seqs, media)["kl"]
    for r in group.ranks:  # free their CPUs for the resumed ranks
        ray.kill(r)
    resumed = LearnerGroup(str(tiny_model_dir), cfg, max_tokens=8)
    resumed.load_state(str(tmp_path), "learner")
    assert expected > 1e-6
    assert resumed.train_step(seqs, media)["kl"] == pytest.approx(expected, rel=1e-4)
    for r in resumed.ranks:
        ray.kill(r)


@pytest.mark.timeout(900)  # the failure this guards against is a hang in a collective
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_a_rank_with_no_sequence_of_its_own_trains_a_stand_in_at_weight_zero_and_the_update_equals_one_ranks(
        ray_local, tiny_model_dir, zero_stage):
    _, seqs, media = grpo_batch(tiny_model_dir, groups=1, g=3, seed=4)

    def score_step_weights(ranks, batch):
        group = LearnerGroup(str(tiny_model_dir), _cfg(num_ranks=ranks, zero_stage=zero_stage, micro_batch_size=1),
                             max_tokens=8)
        scores = group.score(batch, media)  # eval forwards are collectives under ZeRO-3 too
        metrics = group.train_step(batch, media)
        weights = _weights(group)
        for r in group.ranks:
            ray.kill(r)
        return scores, metrics, weights

    # 1 sequence for 2 ranks: rank 1 has nothing at all; 3 sequences at 1 per micro-batch: rank 0 runs 2
    # micro-batches, rank 1 one of its own and one stand-in.
    for batch in (seqs[:1], seqs):
        s1, one, w1 = score_step_weights(1, batch)
        s2, two, w2 = score_step_weights(2, batch)
        assert len(s2) == len(batch) and all(a == pytest.approx(b, abs=1e-6) for a, b in zip(s2, s1))
        assert two["response_tokens"] == one["response_tokens"] == sum(len(s.token_ids) for s in batch)
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5, abs=1e-7)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
        assert two["kl"] == pytest.approx(one["kl"], rel=1e-4, abs=1e-9)
        for k in w1:
            torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4)


def test_truncated_importance_sampling_weights_each_token_by_the_capped_learner_over_engine_ratio(
        ray_local, tiny_model_dir):
    _, seqs, media = grpo_batch(tiny_model_dir, seed=5)
    cfg = _cfg(num_ranks=1, beta=0.0, rollout_is="tis", rollout_is_cap=2.0)
    group = LearnerGroup(str(tiny_model_dir), _cfg(num_ranks=1, beta=0.0), max_tokens=8)
    own = group.score(seqs, media)  # the learner's log-probs: an engine that agrees exactly
    for r in group.ranks:
        ray.kill(r)

    def loss_with_engine_logprobs(shift):  # the engine's log-probs = the learner's + shift
        batch = [dataclasses.replace(s, logprobs=[x + shift for x in lp]) for s, lp in zip(seqs, own)]
        group = LearnerGroup(str(tiny_model_dir), cfg, max_tokens=8)
        metrics = group.train_step(batch, media)
        for r in group.ranks:
            ray.kill(r)
        return metrics

    agree, engine_surer, engine_doubts = (loss_with_engine_logprobs(shift) for shift in (0.0, 1.0, -1.0))
    assert agree["is_weight_mean"] == pytest.approx(1.0, abs=1e-5) and agree["is_capped_frac"] == 0
    # ratio e^-1 on every token: the policy loss (beta 0) scales by it
    assert engine_surer["loss"] == pytest.approx(agree["loss"] * math.exp(-1.0), rel=1e-4)
    assert engine_surer["is_weight_mean"] == pytest.approx(math.exp(-1.0), rel=1e-4)
    # ratio e^1 > cap 2 on every token: capped at 2
    assert engine_doubts["loss"] == pytest.approx(agree["loss"] * 2.0, rel=1e-4)
    assert engine_doubts["is_capped_frac"] == 1.0 and engine_doubts["is_weight_max"] == pytest.approx(2.0)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_shared_prefix_and_token_budget_micro_batches_give_the_update_of_one_row_per_sequence(
        ray_local, tiny_model_dir, zero_stage):
    """An image, a multi-image and a video group, with the KL reference on. Against one row per sequence, 2 a
    micro-batch, on 1 rank: the shared-prefix forward on 1 rank (2 a micro-batch: groups split across
    micro-batches) and on 2 ranks with whole groups packed up to a token budget. The loss is normalised over
    the whole batch, so the update is the same.

    Adam's first step is lr x sign(g): where a gradient is within float noise of 0 the sign flips, so weights
    after a plain step compare signs, not gradients. Here the gradient is clipped far below Adam's eps, which
    makes the update ~ lr x g / eps, smooth in g: the weights then compare the gradients element by element."""
    _, seqs, media = grpo_batch(tiny_model_dir, groups=3, g=3, seed=6, media_types=("image", "images", "video"))
    linear = dict(zero_stage=zero_stage, lr=1.0, grad_clip=1e-9)
    plain, w_plain = _step_and_weights(tiny_model_dir, _cfg(**linear, shared_prefix=False), seqs, media)
    original = load(open(f"{tiny_model_dir}/model.safetensors", "rb").read())
    longest = max(len(s.prompt_token_ids) + len(s.token_ids) * 3 for s in seqs)  # a group's shared row, at most
    variants = {"1 rank": _cfg(**linear),
                "2 ranks, token budget": _cfg(**linear, num_ranks=2, max_tokens_per_micro=longest)}
    for name, cfg in variants.items():
        shared, w_shared = _step_and_weights(tiny_model_dir, cfg, seqs, media)
        assert shared["response_tokens"] == plain["response_tokens"], name
        assert shared["loss"] == pytest.approx(plain["loss"], rel=1e-5, abs=1e-7), name
        assert shared["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-4), name
        assert shared["kl"] == pytest.approx(plain["kl"], rel=1e-4, abs=1e-9), name
        for k in w_plain:
            step = w_plain[k] - original[k]
            torch.testing.assert_close(w_shared[k] - original[k], step, atol=1e-4 * float(step.abs().max()) + 1e-9,
                                       rtol=1e-3, msg=f"{name}: {k}")
