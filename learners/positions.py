"""The 3-D rotary positions (M-RoPE) of a Qwen2.5-VL sequence, exactly as vLLM 0.32 samples with them.

Why this exists: the learner must score each response in the context the engine sampled it from. Given
only the pixel tensors, transformers 5.19's Qwen2.5-VL forward cannot build M-RoPE positions (it needs
`mm_token_type_ids`, which the image/video processors alone do not return) and silently falls back to
1-D positions on all three rotary axes: on a 224 px image every response token then sits 56 positions
away from where vLLM put it, and the image tokens lose their 2-D layout. And where transformers does build
them, it starts the text after a video at a different position than vLLM (transformers#45381). vLLM's
positions are the ones the responses were sampled with, so the learner computes those and passes them
explicitly in every forward (policy, reference, SFT, scoring).

vLLM's rule (`Qwen2_5_VLForConditionalGeneration.get_mrope_input_positions`): text advances all three
axes together; each image or video is a (t, h, w) grid of merged patches placed after the text before it;
the text after it starts one past the largest position the grid used. A video's temporal index is
scaled by `second_per_grid_ts * tokens_per_second` and truncated to an integer, where
`second_per_grid_ts = temporal_patch_size / sampled_fps` and `sampled_fps` comes from the sampling
metadata vLLM hands the HF processor (frames taken / frames in the clip x source fps), not from the
source fps. Response tokens continue the trailing text, so one call over prompt + response gives the
positions of prefill and decode alike.
"""

from __future__ import annotations

import numpy as np
import torch


def video_seconds_per_grid(temporal_patch_size: int, video_meta: dict) -> float:
    """Seconds one temporal grid step spans, from the metadata the engine received with the frames."""
    from transformers.video_utils import VideoMetadata

    known = {k: v for k, v in video_meta.items() if k in VideoMetadata.__dataclass_fields__}
    return temporal_patch_size / VideoMetadata(**known).sampled_fps


def mrope_positions(token_ids: list[int], config, image_grid_thw=None, video_grid_thw=None,
                    second_per_grid_ts=None) -> torch.Tensor:
    """[3, len(token_ids)] int64 positions for one sequence whose media are given in prompt order.

    `image_grid_thw` / `video_grid_thw`: one (t, h, w) row per image / video, in patches (the processor's
    output); `second_per_grid_ts`: one value per video. `config` is the model's (Qwen2_5_VLConfig).
    """
    ids = np.asarray(token_ids)
    merge = config.vision_config.spatial_merge_size
    tokens_per_second = getattr(config.vision_config, "tokens_per_second", 1.0)
    grids = {config.image_token_id: [(g, 1.0) for g in _rows(image_grid_thw)],
             config.video_token_id: [(g, s * tokens_per_second)
                                     for g, s in zip(_rows(video_grid_thw), _values(second_per_grid_ts))]}
    used = {token: 0 for token in grids}
    is_media = np.isin(ids, list(grids))
    blocks: list[np.ndarray] = []
    start = next_position = 0
    while (found := np.flatnonzero(is_media[start:])).size:
        offset = start + int(found[0])
        token = int(ids[offset])
        if used[token] >= len(grids[token]):
            raise ValueError(f"more placeholders of token {token} than the {len(grids[token])} grids given")
        (t, h, w), t_factor = grids[token][used[token]]
        used[token] += 1
        text = np.arange(offset - start)
        blocks.append(np.broadcast_to(text, (3, len(text))) + next_position)
        grid = np.indices((t, h // merge, w // merge))
        if t_factor != 1.0:
            grid[0] = (grid[0] * t_factor).astype(np.int64)
        blocks.append(grid.reshape(3, -1) + len(text) + next_position)
        start = offset + t * (h // merge) * (w // merge)
        next_position = int(blocks[-1].max()) + 1
    if start < len(ids):
        text = np.arange(len(ids) - start)
        blocks.append(np.broadcast_to(text, (3, len(text))) + next_position)
    for token, count in used.items():
        if count != len(grids[token]):
            raise ValueError(f"{len(grids[token])} grids given for token {token}, {count} placeholders found")
    return torch.from_numpy(np.concatenate(blocks, axis=1).astype(np.int64))


def _rows(grid) -> list[tuple[int, int, int]]:
    return [] if grid is None else [tuple(int(x) for x in row) for row in torch.as_tensor(grid).tolist()]


def _values(seconds) -> list[float]:
    """As float32, the dtype vLLM holds them in (the HF processor's tensor): a float64 value could land on
    the other side of an integer when the temporal index is truncated."""
    return [] if seconds is None else torch.as_tensor(seconds, dtype=torch.float32).reshape(-1).tolist()
