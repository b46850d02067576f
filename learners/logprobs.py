"""Per-token log-probs and entropy of response tokens under a Qwen2.5-VL model (learner side).

The learner must score exactly what the engine sampled from, or the GRPO gradient and every importance
ratio are off: the prompt ids vLLM reports (already expanded with image/video pads), pixel tensors rebuilt
from the same media by the same processor, video timing from the same sampling metadata, vLLM's M-RoPE
positions (learners/positions.py), and the distribution vLLM draws from: logits plus the engine's logit
bias on the banned pad tokens, divided by the rollout temperature (the engine reports these "processed"
log-probs). Top-p/top-k truncation is not reproduced: the config refuses it for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from learners.positions import mrope_positions, video_seconds_per_grid
from rollout.engine import BANNED_LOGIT_BIAS, default_video_meta
from rollout.records import RolloutRequest


@dataclass
class ScoredSequence:
    """A prompt (expanded ids) + one response, with the pixel tensors of its media and its positions."""

    prompt_token_ids: list[int]
    token_ids: list[int]
    media: dict  # output of media_tensors()
    positions: torch.Tensor  # [3, prompt + response] M-RoPE positions, as vLLM sampled with


def scored_sequence(config, prompt_token_ids: list[int], token_ids: list[int], media: dict) -> ScoredSequence:
    positions = mrope_positions(prompt_token_ids + token_ids, config, media.get("image_grid_thw"),
                                media.get("video_grid_thw"), media.get("second_per_grid_ts"))
    return ScoredSequence(prompt_token_ids, token_ids, media, positions)


def media_tensors(processor, request: RolloutRequest) -> dict:
    """Pixel tensors for one request's media, built by the model's own processor (same resize as vLLM uses);
    a video's timing from the metadata the engine was given with its frames (its default when there was none)."""
    if request.media_type == "image":
        return dict(processor.image_processor(images=[request.image], return_tensors="pt"))
    if request.media_type == "images":
        return dict(processor.image_processor(images=list(request.frames), return_tensors="pt"))
    if request.media_type == "video":
        vp = processor.video_processor
        out = dict(vp(videos=[request.frames], do_sample_frames=False, return_tensors="pt"))
        meta = request.video_meta or default_video_meta(len(request.frames))
        out["second_per_grid_ts"] = torch.tensor([video_seconds_per_grid(vp.temporal_patch_size, meta)])
        return out
    raise ValueError(f"unknown media_type {request.media_type!r}")


def _collate_media(items: list[dict]) -> dict:
    keys = {k for m in items for k in m}
    return {k: torch.cat([m[k] for m in items if k in m]) for k in keys}


def sequence_logprobs(model, seqs: list[ScoredSequence], pad_id: int, temperature: float = 1.0,
                      banned_ids: list[int] = (), with_entropy: bool = False):
    """Log-prob (and entropy) of every response token; one right-padded forward for the micro-batch.

    Only the positions that predict response tokens get logits (`logits_to_keep`), and they are taken
    out with ONE gather: slicing each sequence out of the full logits made every slice's backward
    zero-fill a logits-sized gradient — 57% of a tiny model's forward+backward (benchmarks/vs_trl.py).
    `banned_ids` get the engine's logit bias (rollout/engine.py), then logits are divided by `temperature`,
    in vLLM's order. The entropy is a metric: it is computed outside the graph, so no second
    [tokens x vocab] tensor waits for the backward.
    Returns lists of 1-D tensors (one per sequence, length = its response) so callers never see padding.
    """
    lengths = [len(s.prompt_token_ids) + len(s.token_ids) for s in seqs]
    width = max(lengths)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    positions = torch.zeros((3, len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : lengths[i]] = torch.tensor(s.prompt_token_ids + s.token_ids)
        mask[i, : lengths[i]] = 1
        positions[:, i, : lengths[i]] = s.positions
    first = min(len(s.prompt_token_ids) for s in seqs) - 1  # the earliest position that predicts a response token
    rows = torch.cat([torch.full((len(s.token_ids),), i) for i, s in enumerate(seqs)])
    cols = torch.cat([torch.arange(len(s.prompt_token_ids) - 1, n - 1) for s, n in zip(seqs, lengths)])
    device = next(model.parameters()).device
    media = {k: v.to(device) for k, v in _collate_media([s.media for s in seqs]).items()}
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   use_cache=False, logits_to_keep=torch.arange(first, width - 1, device=device), **media).logits
    picked = logits[rows.to(device), (cols - first).to(device)].float()
    if len(banned_ids):
        bias = torch.zeros(picked.shape[-1], device=device)
        bias[list(banned_ids)] = BANNED_LOGIT_BIAS
        picked = picked + bias
    step = torch.log_softmax(picked / temperature, dim=-1)
    logp = step.gather(-1, ids[rows, cols + 1].to(device)[:, None]).squeeze(-1)
    sizes = [len(s.token_ids) for s in seqs]
    logps = list(logp.split(sizes))
    if not with_entropy:
        return logps
    with torch.no_grad():
        entropy = -(step.exp() * step).sum(-1)
    return logps, list(entropy.split(sizes))
