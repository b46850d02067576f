"""Per-token log-probs and entropy of response tokens under a Qwen2.5-VL model (learner side).

The learner must score exactly the context the engine sampled from: it uses the prompt ids vLLM reports
(already expanded with image/video pads) and rebuilds only the pixel tensors from the same media with the
same processor config. Positions (mrope) come from the model itself, given the grids and attention mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ScoredSequence:
    """A prompt (expanded ids) + one response, with the pixel tensors of its media."""

    prompt_ids: list[int]
    response_ids: list[int]
    media: dict  # output of media_tensors()


def media_tensors(processor, media_type: str, image=None, frames=None, video_meta=None) -> dict:
    """Pixel tensors for one item, built by the model's own processor (same resize as vLLM uses)."""
    if media_type == "image":
        return dict(processor.image_processor(images=[image], return_tensors="pt"))
    if media_type == "images":
        return dict(processor.image_processor(images=list(frames), return_tensors="pt"))
    if media_type == "video":
        vp = processor.video_processor
        out = dict(vp(videos=[frames], do_sample_frames=False, return_tensors="pt"))
        fps = (video_meta or {}).get("fps", 2.0)
        out["second_per_grid_ts"] = torch.tensor([vp.temporal_patch_size / fps])
        return out
    raise ValueError(f"unknown media_type {media_type!r}")


def _collate_media(items: list[dict]) -> dict:
    keys = {k for m in items for k in m}
    return {k: torch.cat([m[k] for m in items if k in m]) for k in keys}


def sequence_logprobs(model, seqs: list[ScoredSequence], pad_id: int, temperature: float = 1.0,
                      with_entropy: bool = False):
    """Log-prob (and entropy) of every response token; one right-padded forward for the micro-batch.

    Only the positions that predict response tokens get logits (`logits_to_keep`), and they are taken
    out with ONE gather: slicing each sequence out of the full logits made every slice's backward
    zero-fill a logits-sized gradient — 57% of a tiny model's forward+backward (benchmarks/vs_trl.py).
    Returns lists of 1-D tensors (one per sequence, length = its response) so callers never see padding.
    """
    lengths = [len(s.prompt_ids) + len(s.response_ids) for s in seqs]
    width = max(lengths)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : lengths[i]] = torch.tensor(s.prompt_ids + s.response_ids)
        mask[i, : lengths[i]] = 1
    first = min(len(s.prompt_ids) for s in seqs) - 1  # the earliest position that predicts a response token
    rows = torch.cat([torch.full((len(s.response_ids),), i) for i, s in enumerate(seqs)])
    cols = torch.cat([torch.arange(len(s.prompt_ids) - 1, n - 1) for s, n in zip(seqs, lengths)])
    device = next(model.parameters()).device
    media = {k: v.to(device) for k, v in _collate_media([s.media for s in seqs]).items()}
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False,
                   logits_to_keep=torch.arange(first, width - 1, device=device), **media).logits
    step = torch.log_softmax(logits[rows.to(device), (cols - first).to(device)].float() / temperature, dim=-1)
    logp = step.gather(-1, ids[rows, cols + 1].to(device)[:, None]).squeeze(-1)
    sizes = [len(s.response_ids) for s in seqs]
    logps = list(logp.split(sizes))
    if not with_entropy:
        return logps
    return logps, list((-(step.exp() * step).sum(-1)).split(sizes))
