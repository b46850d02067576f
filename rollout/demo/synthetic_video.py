"""Moving scenes for the synthetic benchmark's videos, and their temporal and compression defects.

Two kinds of scene, both rendered from a continuous scene time so that defects can be applied to time
itself: a camera panning across one of the benchmark's source pictures (so a video's content, and thus
its train/test side, is the picture's), and coloured shapes moving over a gradient. Defects:
- compression: the clean scene encoded at a high H.264 CRF (blocking, smearing);
- stutter: runs of frozen frames — playback pauses, then catches up (the scene clock keeps running);
- frame_drop: the scene jumps ahead at a few moments, as when frames are lost (no pause, a skip).
Stutter and frame drops are encoded at a clean CRF so the temporal defect is the only one.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from rollout.demo.distortions import COMPRESSION_CRF, FRAME_DROP_JUMPS, STUTTER_FROZEN

CLEAN_CRF = 20


def render_pan(picture: np.ndarray, size: int, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frames of a square window of `size` moving diagonally across `picture`, at scene times in [0, 1].

    The picture is scaled so its short side is twice the window, leaving room to move; which corner the
    camera starts from is random.
    """
    height, width = picture.shape[:2]
    scale = 2 * size / min(height, width)
    canvas = np.asarray(Image.fromarray(picture).resize(
        (max(2 * size, round(width * scale)), max(2 * size, round(height * scale))), Image.Resampling.BICUBIC))
    room = np.array(canvas.shape[:2]) - size
    corners = np.array([[0, 0], [0, room[1]], [room[0], 0], room], dtype=float)
    first = int(rng.integers(4))
    start, end = corners[first], corners[3 - first]  # the opposite corner
    frames = []
    for t in times:
        top, left = np.round(start + (end - start) * t).astype(int)
        frames.append(canvas[top:top + size, left:left + size])
    return np.stack(frames)


def render_shapes(size: int, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frames of 3-5 coloured discs and boxes drifting (wrapping around) over a two-colour gradient."""
    colours = rng.integers(0, 256, size=(2, 3))
    ramp = np.linspace(0, 1, size)[:, None, None]
    background = (colours[0] * (1 - ramp) + colours[1] * ramp).astype(np.uint8).repeat(size, axis=1)
    count = int(rng.integers(3, 6))
    origins = rng.uniform(0, size, size=(count, 2))
    velocities = rng.uniform(-1.0, 1.0, size=(count, 2)) * size  # per unit of scene time
    radii = rng.uniform(size / 12, size / 5, size=count)
    fills = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(count)]
    discs = rng.random(count) < 0.5
    frames = []
    for t in times:
        image = Image.fromarray(background.copy())
        draw = ImageDraw.Draw(image)
        for (y, x), radius, fill, disc in zip((origins + velocities * t) % size, radii, fills, discs):
            box = (x - radius, y - radius, x + radius, y + radius)
            (draw.ellipse if disc else draw.rectangle)(box, fill=fill)
        frames.append(np.asarray(image))
    return np.stack(frames)


def scene_times(distortion: str, severity: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """The scene time (0..1) each output frame shows, and so the temporal defect, as a pure function."""
    step = 1.0 / (num_frames - 1)
    if distortion == "stutter":
        frozen = rng.random(num_frames) < STUTTER_FROZEN[severity - 1]
        frozen[0] = False
        shown = np.arange(num_frames)
        for i in range(1, num_frames):
            shown[i] = shown[i - 1] if frozen[i] else i  # a frozen frame repeats; the clock runs on
        return shown * step
    if distortion == "frame_drop":
        jumps = np.zeros(num_frames)
        jumps[rng.choice(np.arange(1, num_frames), size=min(FRAME_DROP_JUMPS[severity - 1], num_frames - 1),
                         replace=False)] = rng.integers(2, 4)  # each jump skips 2-3 frames of scene time
        # The skips push the scene further along; the whole path is squeezed back into [0, 1].
        times = np.arange(num_frames) + np.cumsum(jumps)
        return times / times[-1]
    return np.arange(num_frames) * step


def video_crf(distortion: str, severity: int) -> int:
    return COMPRESSION_CRF[severity - 1] if distortion == "compression" else CLEAN_CRF
