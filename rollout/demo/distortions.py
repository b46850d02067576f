"""The synthetic benchmark's distortions, their five severities, and the MOS each severity is given.

Why these levels: a probe before any code existed found that a ~1M-parameter Qwen2.5-VL at 112 px learns
contrast well, blur partly, JPEG weakly and Gaussian noise not at all. So the levels here are spread wide —
severity 5 of every type is unmistakable even inside one 14-px vision patch — and two more types a patch
sees at a glance (pixelation by down-up sampling, and underexposure) are added. Spatial parameters (blur
sigma) scale with the image size, so a 224-px set degrades like a 112-px one.

MOS calibration: severity s (1..5) of type t gets
    mos(t, s) = top_t - (s - 1) * (top_t - bottom_t) / 4
with (top_t, bottom_t) in MOS_ANCHORS. The anchors follow how strongly each type's mildest and
strongest level read to a viewer at this size — e.g. level-1 noise (sigma 6/255) is already visible on
flat regions, so it starts lower than level-1 darkening; temporal defects (stutter, frame drops) bottom
out higher than compression, since a sampled 8-frame view hides part of them. They are a documented
design choice, not a human study; every manifest row also carries `distortion` and `severity` so any
other calibration can be recomputed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

SEVERITIES = (1, 2, 3, 4, 5)

# Parameters per severity 1..5, at 112 px (blur sigma scales with size/112).
BLUR_SIGMA = (0.7, 1.3, 2.0, 3.0, 4.5)
NOISE_STD = (6.0, 14.0, 26.0, 42.0, 64.0)  # on 0..255
JPEG_QUALITY = (45, 25, 12, 6, 2)
CONTRAST_KEEP = (0.70, 0.50, 0.35, 0.22, 0.12)  # fraction of the deviation from mean grey kept
DOWNUP_FACTOR = (2, 3, 4, 6, 8)  # box down, nearest up: visible blocks
DARKEN_GAMMA = (1.5, 2.0, 2.7, 3.5, 4.5)

# Video: constant-quality H.264 levels, fraction of frames frozen, number of skipped-ahead jumps.
COMPRESSION_CRF = (30, 36, 41, 46, 51)
STUTTER_FROZEN = (0.15, 0.30, 0.45, 0.60, 0.75)
FRAME_DROP_JUMPS = (1, 2, 3, 5, 7)

MOS_ANCHORS = {
    "blur": (4.4, 1.3), "noise": (4.2, 1.2), "jpeg": (4.3, 1.2), "contrast": (4.5, 1.2),
    "downup": (4.4, 1.4), "darken": (4.5, 1.3),
    "compression": (4.3, 1.2), "stutter": (4.2, 2.0), "frame_drop": (4.2, 2.0),
}
IMAGE_DISTORTIONS = ("blur", "noise", "jpeg", "contrast", "downup", "darken")
# The undistorted crop (severity 0): above every type's mildest level, as a reference image is in KADID-10k.
PRISTINE, PRISTINE_MOS = "pristine", 4.8
VIDEO_DISTORTIONS = ("compression", "stutter", "frame_drop")


def synthetic_mos(distortion: str, severity: int) -> float:
    """The MOS given to `severity` (1..5) of `distortion`; see the module docstring."""
    if distortion == PRISTINE:
        return PRISTINE_MOS
    return linear_mos(*MOS_ANCHORS[distortion], severity)


def linear_mos(top: float, bottom: float, severity: int) -> float:
    """Severity 1 at `top`, 5 at `bottom`, evenly between (both generators' calibration)."""
    return round(top - (severity - 1) * (top - bottom) / 4, 4)


def distort_image(image: np.ndarray, distortion: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply one distortion at one severity to an RGB uint8 image [H, W, 3]; returns a new array."""
    if distortion == PRISTINE:
        return image.copy()
    level = severity - 1
    height, width = image.shape[:2]
    if distortion == "blur":
        radius = BLUR_SIGMA[level] * max(height, width) / 112
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    if distortion == "noise":
        noisy = image.astype(np.float32) + rng.normal(0.0, NOISE_STD[level], image.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    if distortion == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY[level])
        return np.asarray(Image.open(buffer).convert("RGB"))
    if distortion == "contrast":
        mean = image.astype(np.float32).mean()
        return np.clip(mean + CONTRAST_KEEP[level] * (image - mean), 0, 255).round().astype(np.uint8)
    if distortion == "downup":
        factor = DOWNUP_FACTOR[level]
        small = Image.fromarray(image).resize((max(1, width // factor), max(1, height // factor)),
                                              Image.Resampling.BOX)
        return np.asarray(small.resize((width, height), Image.Resampling.NEAREST))
    if distortion == "darken":
        return (255.0 * (image / 255.0) ** DARKEN_GAMMA[level]).round().astype(np.uint8)
    raise ValueError(f"unknown image distortion {distortion!r}; known: {IMAGE_DISTORTIONS}")
