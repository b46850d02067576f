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
from learners.prefix_attention import layout_mask, use_prefix_attention
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


def _rows(seqs: list[ScoredSequence], shared_prefix: bool) -> list[list[ScoredSequence]]:
    """Sequences per forward row: one each, or with `shared_prefix` each run of sequences that share a prompt
    and its media (a GRPO group, or the part of one that fell into this micro-batch)."""
    rows: list[list[ScoredSequence]] = []
    for s in seqs:
        prev = rows[-1][0] if rows else None
        if shared_prefix and prev is not None and prev.media is s.media and prev.prompt_token_ids == s.prompt_token_ids:
            rows[-1].append(s)
        else:
            rows.append([s])
    return rows


def sequence_logprobs(model, seqs: list[ScoredSequence], pad_id: int, temperature: float = 1.0,
                      banned_ids: list[int] = (), with_entropy: bool = False, shared_prefix: bool = False):
    """Log-prob (and entropy) of every response token; one right-padded forward for the micro-batch.

    With `shared_prefix` (Prefix Grouper, arXiv 2506.05433), the responses to one prompt share a row
    `[prompt | r1 | ... | rG]`: the vision tower and the prompt run once per group instead of G times. Each
    response sees the prompt and itself only (learners/prefix_attention.py) and keeps the positions it has
    after the prompt alone, so every log-prob is the one its own sequence would get. The prompt's last
    position predicts the first token of every response.

    Only the positions that predict response tokens get logits (`logits_to_keep`), and they are taken
    out with ONE gather: slicing each sequence out of the full logits made every slice's backward
    zero-fill a logits-sized gradient — 57% of a tiny model's forward+backward (benchmarks/vs_trl.py).
    `banned_ids` get the engine's logit bias (rollout/engine.py), then logits are divided by `temperature`,
    in vLLM's order. The entropy is a metric: it is computed outside the graph, so no second
    [tokens x vocab] tensor waits for the backward.
    Returns lists of 1-D tensors (one per sequence, length = its response) so callers never see padding.
    """
    rows = _rows(seqs, shared_prefix)
    lengths = [len(r[0].prompt_token_ids) + sum(len(s.token_ids) for s in r) for r in rows]
    width = max(lengths)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    positions = torch.zeros((3, len(rows), width), dtype=torch.long)
    row_of, col_of = [], []  # per response token: the row and column whose logits predict it
    for i, row in enumerate(rows):
        prompt = len(row[0].prompt_token_ids)
        ids[i, :prompt] = torch.tensor(row[0].prompt_token_ids)
        segments[i, :prompt] = 0
        positions[:, i, :prompt] = row[0].positions[:, :prompt]
        start = prompt
        for k, s in enumerate(row, start=1):
            n = len(s.token_ids)
            ids[i, start : start + n] = torch.tensor(s.token_ids, dtype=torch.long)
            segments[i, start : start + n] = k
            positions[:, i, start : start + n] = s.positions[:, prompt:]
            row_of.append(torch.full((n,), i))
            col_of.append(torch.cat([torch.tensor([prompt - 1]), torch.arange(start, start + n - 1)])[:n])
            start += n
    rows_t, cols = torch.cat(row_of), torch.cat(col_of)
    targets = torch.cat([torch.tensor(s.token_ids, dtype=torch.long) for s in seqs])
    device = next(model.parameters()).device
    if shared_prefix:
        use_prefix_attention(model)
    mask = layout_mask(segments) if shared_prefix else (segments >= 0).long()
    first, last = int(cols.min()), int(cols.max())
    media = {k: v.to(device) for k, v in _collate_media([r[0].media for r in rows]).items()}
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   use_cache=False, logits_to_keep=torch.arange(first, last + 1, device=device), **media).logits
    picked = logits[rows_t.to(device), (cols - first).to(device)].float()
    if len(banned_ids):
        bias = torch.zeros(picked.shape[-1], device=device)
        bias[list(banned_ids)] = BANNED_LOGIT_BIAS
        picked = picked + bias
    step = torch.log_softmax(picked / temperature, dim=-1)
    logp = step.gather(-1, targets.to(device)[:, None]).squeeze(-1)
    sizes = [len(s.token_ids) for s in seqs]
    logps = list(logp.split(sizes))
    if not with_entropy:
        return logps
    with torch.no_grad():
        entropy = -(step.exp() * step).sum(-1)
    return logps, list(entropy.split(sizes))
