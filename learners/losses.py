"""GRPO-family losses on padded [N, L] token tensors: advantages, PPO clip, KL estimators, aggregation.

Every loss is returned in SUM form divided by a normaliser the caller computes over the WHOLE global
batch (all ranks, all micro-batches): then micro-batching and data parallelism give the same gradient
as one big batch, whatever the split (the 2-rank = 1-rank test holds to float error).
"""

from __future__ import annotations

import numpy as np
import torch

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
# exp() of a log-ratio beyond this overflows float32 (e^89) long before it means anything; responses from an
# older policy (one-step-off) can be that far from the current one on a rare token. verl clamps at the same.
LOG_RATIO_CLAMP = 20.0


def group_advantages(rewards: np.ndarray, group_size: int, kind: str = "grpo", eps: float = 1e-6) -> np.ndarray:
    """GRPO: (r - mean) / (std + eps) per group of G (std unbiased, as TRL); Dr.GRPO: r - mean."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    centred = r - r.mean(axis=1, keepdims=True)
    if kind == "grpo":
        std = r.std(axis=1, ddof=1, keepdims=True) if group_size > 1 else np.zeros_like(centred)
        return (centred / (std + eps)).reshape(-1)
    if kind == "dr_grpo":
        return centred.reshape(-1)
    raise ValueError(f"unknown advantage {kind!r} (grpo | dr_grpo)")


def zero_variance_groups(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """True for each group whose G rewards are all equal: it carries no GRPO signal (DAPO's filter)."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    return np.ptp(r, axis=1) == 0


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token KL(pi || ref) estimators of Schulman's note: k1 unbiased, k2 and k3 low-variance, k3 >= 0."""
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(log_ratio) - log_ratio - 1
    raise ValueError(f"unknown KL estimator {estimator!r} (k1 | k2 | k3)")


def clipped_policy_loss(logp, old_logp, advantages, clip_low=0.2, clip_high=0.2, dual_clip=0.0):
    """Per-token PPO loss with clip-higher (separate epsilons, DAPO) and optional dual clip (c > 1).

    Returns (loss [N, L], clipped mask [N, L]).
    """
    ratio = torch.exp(torch.clamp(logp - old_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    adv = advantages[:, None]
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip > 0:
        # For negative advantages the loss is also bounded by -c * A (ratio far above 1 + eps).
        bound = -adv * dual_clip
        dual = (adv < 0) & (loss > bound)
        loss = torch.where(dual, bound, loss)
        was_clipped = was_clipped | dual
    return loss, was_clipped


def truncated_is_weights(old_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float):
    """Truncated importance sampling (TIS, as TRL's and verl's rollout correction): the engine samples from
    a slightly different distribution than the learner scores (kernels, bf16, a stale cache), so each
    token's loss is weighted by min(pi_learner / pi_engine, cap), detached. Returns (weights, capped mask)."""
    ratio = torch.exp(torch.clamp(old_logp - rollout_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)).detach()
    return torch.clamp(ratio, max=cap), ratio > cap


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, norm: dict) -> torch.Tensor:
    """Sum-form aggregation over this micro-batch, divided by global normalisers in `norm`.

    token-mean (DAPO): sum / total response tokens of the batch;
    seq-mean-token-mean (TRL/the papers): sum over seqs of each seq's token mean / number of seqs;
    seq-mean-token-sum-norm (Dr.GRPO): sum / (number of seqs x a constant length, max_tokens).
    """
    mask = mask.to(per_token.dtype)
    if mode == "token-mean":
        return (per_token * mask).sum() / norm["tokens"]
    if mode == "seq-mean-token-mean":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / norm["seqs"]
    if mode == "seq-mean-token-sum-norm":
        return (per_token * mask).sum() / (norm["seqs"] * norm["max_tokens"])
    raise ValueError(f"unknown loss aggregation {mode!r} ({' | '.join(AGGREGATIONS)})")


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, norm: dict) -> torch.Tensor:
    """Cross-entropy on response tokens only (Q-Ponder's cold start), token-mean over the global batch."""
    return aggregate(-logp, mask, "token-mean", norm)


def pad_stack(seqs: list[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D tensors to [N, L]; returns (values, mask), on the tensors' device (a learner's
    log-probs stay on its GPU)."""
    width = max((len(s) for s in seqs), default=0)
    device = seqs[0].device if seqs else None
    out = torch.full((len(seqs), width), value, dtype=seqs[0].dtype if seqs else torch.float32, device=device)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool, device=device)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = True
    return out, mask
