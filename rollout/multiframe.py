"""PreResQ-R1's video view: one global multi-frame composite plus K local single frames.

PreResQ-R1 (arXiv 2511.05393; DanceSkyCode/General-Visual-Quality-RL, grpo_preres_VQA_r1.py) shows the
model a video as one "global multi-frame picture" — frames tiled into a single image, so one image
carries the temporal overview — plus 3 single frames at full detail (docs/rewards.md, preset `preresq-vqa`).
The exact tiling is not public; qthink tiles `rows * cols` uniformly sampled frames row-major (left to
right, then top to bottom) and takes the K local frames at the centres of K equal segments, so local
frames are spread over the video like the tiles are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from rollout.media import fit_size


@dataclass(frozen=True)
class MultiFrameView:
    """The composite [rows*h, cols*w, 3], the local frames [K, H, W, 3], and which frames each holds."""

    composite: np.ndarray
    local_frames: np.ndarray
    composite_indices: list[int]
    local_indices: list[int]


def multiframe_view(frames: np.ndarray, rows: int = 2, cols: int = 2, num_local: int = 3,
                    tile_max_side: int | None = None) -> MultiFrameView:
    """Build the view from decoded frames [T, H, W, 3]; indices refer to positions in `frames`.

    `tile_max_side` shrinks each tile (aspect kept) so the composite stays near one frame's size;
    local frames keep the decoded resolution.
    """
    total, height, width = frames.shape[:3]
    tile_indices = np.linspace(0, total - 1, rows * cols).round().astype(int)
    tile_w, tile_h = fit_size(width, height, max_side=tile_max_side)
    composite = np.zeros((rows * tile_h, cols * tile_w, 3), dtype=np.uint8)
    for slot, index in enumerate(tile_indices):
        tile = frames[index]
        if (tile_w, tile_h) != (width, height):
            tile = np.asarray(Image.fromarray(tile).resize((tile_w, tile_h), Image.Resampling.BICUBIC))
        row, col = divmod(slot, cols)
        composite[row * tile_h:(row + 1) * tile_h, col * tile_w:(col + 1) * tile_w] = tile
    local_indices = np.minimum(((np.arange(num_local) + 0.5) * total / num_local).astype(int), total - 1)
    return MultiFrameView(composite, frames[local_indices].copy(), tile_indices.tolist(),
                          local_indices.tolist())
