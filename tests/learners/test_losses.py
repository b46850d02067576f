"""Loss math on hand-built tensors: every expected value is worked out in the test."""

import math

import numpy as np
import pytest
import torch

from learners.losses import (
    aggregate,
    clipped_policy_loss,
    group_advantages,
    kl_estimate,
    pad_stack,
    sft_loss,
    truncated_is_weights,
    zero_variance_groups,
)


def test_grpo_and_dr_grpo_advantages_by_hand():
    r = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])  # two groups of G=3
    # group 1: mean 2, unbiased std 1 -> (-1, 0, 1); group 2: zero variance -> 0 / eps = 0
    np.testing.assert_allclose(group_advantages(r, 3, "grpo"), [-1 / (1 + 1e-6), 0, 1 / (1 + 1e-6), 0, 0, 0])
    np.testing.assert_allclose(group_advantages(r, 3, "dr_grpo"), [-1, 0, 1, 0, 0, 0])
    assert zero_variance_groups(r, 3).tolist() == [False, True]
    with pytest.raises(ValueError):
        group_advantages(r, 3, "ppo")


def _batch():
    # two responses of lengths 2 and 4 (padded to 4)
    logp, mask = pad_stack([torch.tensor([-1.0, -2.0]), torch.tensor([-0.5, -0.5, -1.0, -3.0])])
    return logp, mask, torch.tensor([2.0, -1.0])


@pytest.mark.parametrize("mode, expected", [
    # ratio 1 -> per-token loss is -A; token-mean: (-2*2 + 1*4) / 6 tokens = 0
    ("token-mean", (-2 * 2 + 1 * 4) / 6),
    # seq-mean-token-mean: mean over seqs of (-A) = (-2 + 1) / 2
    ("seq-mean-token-mean", (-2 + 1) / 2),
    # Dr.GRPO: token sums / (seqs * max_tokens=8): (-4 + 4) / 16
    ("seq-mean-token-sum-norm", (-2 * 2 + 1 * 4) / (2 * 8)),
])
def test_ratio_one_gives_minus_mean_advantage_under_each_aggregation(mode, expected):
    logp, mask, adv = _batch()
    loss, clipped = clipped_policy_loss(logp, logp.detach(), adv)
    assert not clipped[mask].any()
    norm = {"tokens": 6, "seqs": 2, "max_tokens": 8}
    assert float(aggregate(loss, mask, mode, norm)) == pytest.approx(expected)


def test_clipping_bounds_the_ratio_with_separate_low_and_high_epsilons():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[0.5, 0.9, 1.1, 1.5]]))  # ratios 0.5, 0.9, 1.1, 1.5
    # positive advantage: gain capped at 1 + eps_high = 1.28; ratios below 1 are not clipped (min(-A r, ...))
    loss, clipped = clipped_policy_loss(logp, old, torch.tensor([1.0]), clip_low=0.2, clip_high=0.28)
    np.testing.assert_allclose(loss.numpy(), [[-0.5, -0.9, -1.1, -1.28]], rtol=1e-6)
    assert clipped.tolist() == [[False, False, False, True]]
    # negative advantage: the ratio is floored at 1 - eps_low = 0.8
    loss, clipped = clipped_policy_loss(logp, old, torch.tensor([-1.0]), clip_low=0.2, clip_high=0.28)
    np.testing.assert_allclose(loss.numpy(), [[0.8, 0.9, 1.1, 1.5]], rtol=1e-6)
    assert clipped.tolist() == [[True, False, False, False]]


def test_dual_clip_bounds_negative_advantage_losses():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[2.0, 5.0]]))
    loss, clipped = clipped_policy_loss(logp, old, torch.tensor([-1.0]), dual_clip=3.0)
    # plain PPO would give ratio * 1 = 2 and 5; dual clip caps at c * |A| = 3
    np.testing.assert_allclose(loss.numpy(), [[2.0, 3.0]], rtol=1e-6)
    assert clipped.tolist() == [[False, True]]


def test_kl_estimators_by_hand_and_k3_is_never_negative():
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])
    d = ref - logp  # (-0.5, 1.0)
    np.testing.assert_allclose(kl_estimate(logp, ref, "k1"), -d)
    np.testing.assert_allclose(kl_estimate(logp, ref, "k2"), 0.5 * d**2)
    np.testing.assert_allclose(kl_estimate(logp, ref, "k3"), [math.exp(-0.5) + 0.5 - 1, math.exp(1) - 1 - 1], rtol=1e-6)
    x = torch.randn(1000) * 5
    assert (kl_estimate(x, torch.randn(1000) * 5, "k3") >= 0).all()


def test_sft_loss_is_token_mean_cross_entropy_on_response_tokens():
    logp, mask, _ = _batch()
    # -(sum of the six logps) / 6 ; padded zeros are masked
    assert float(sft_loss(logp, mask, {"tokens": 6})) == pytest.approx((1 + 2 + 0.5 + 0.5 + 1 + 3) / 6)


def test_an_off_policy_log_ratio_beyond_20_is_clamped_instead_of_overflowing():
    logp = torch.tensor([[0.0, -1.0]], requires_grad=True)
    old = torch.tensor([[-200.0, -1.0]])  # a token the behaviour policy almost never drew
    loss, _ = clipped_policy_loss(logp, old, torch.tensor([-1.0]), 0.2, 0.2)
    assert torch.isfinite(loss).all() and loss[0, 0].item() == pytest.approx(math.exp(20.0), rel=1e-6)
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all()


def test_truncated_importance_weights_are_the_capped_learner_over_engine_ratio():
    learner = torch.tensor([[-1.0, -2.0, -0.5]])
    engine = torch.tensor([[-1.0, -1.0, -2.0]])  # ratios 1, e^-1, e^1.5 = 4.48
    weights, capped = truncated_is_weights(learner, engine, cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[1.0, math.exp(-1.0), 2.0]]))
    assert capped.tolist() == [[False, False, True]]
