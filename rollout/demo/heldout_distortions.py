"""The second distortion generator: one the demo never trains on, so evaluation can hold out a whole generator.

A model that has learned "blur" should recognise blur made by other code. Every type here is a separate
implementation with its own parameter grid and its own MOS anchors, not a re-parameterisation of
rollout/demo/distortions.py:
- blur: scipy.ndimage's Gaussian filter (the training generator uses PIL's box-approximated one);
- noise: Gaussian noise in YCbCr, chroma at half the luma strength (training: RGB, equal per channel);
- jpeg: block-DCT quantisation written here (8x8 DCT-II, the JPEG Annex K tables scaled by the IJG quality
  rule, 4:2:0 chroma), no libjpeg (training: PIL's encoder);
- contrast: PIL ImageEnhance.Contrast, towards the mean luminance (training: towards the RGB mean).
MOS: the same linear scheme, severity 1 at the type's top anchor down to severity 5 at its bottom.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance
from scipy import fft, ndimage

from rollout.demo.distortions import linear_mos

HELDOUT_DISTORTIONS = ("blur", "noise", "jpeg", "contrast")
BLUR_SIGMA = (0.6, 1.1, 1.7, 2.5, 3.6)  # px at 112 px
LUMA_NOISE_STD = (5.0, 10.0, 18.0, 30.0, 48.0)
JPEG_QUALITY = (40, 22, 13, 8, 4)
CONTRAST_FACTOR = (0.62, 0.45, 0.32, 0.22, 0.14)
MOS_ANCHORS = {"blur": (4.5, 1.2), "noise": (4.3, 1.3), "jpeg": (4.4, 1.2), "contrast": (4.4, 1.3)}

# JPEG Annex K: the example luminance and chrominance quantisation tables (quality 50).
LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64).reshape(8, 8)
CHROMA_TABLE = np.full((8, 8), 99.0)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def heldout_mos(distortion: str, severity: int) -> float:
    return linear_mos(*MOS_ANCHORS[distortion], severity)


def distort_heldout(image: np.ndarray, distortion: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One held-out-generator distortion at severity 1..5 of an RGB uint8 image; returns a new array."""
    level = severity - 1
    if distortion == "blur":
        sigma = BLUR_SIGMA[level] * max(image.shape[:2]) / 112
        blurred = ndimage.gaussian_filter(image.astype(np.float64), (sigma, sigma, 0))
        return np.clip(blurred, 0, 255).round().astype(np.uint8)
    if distortion == "noise":
        ycc = _ycbcr(image)
        std = LUMA_NOISE_STD[level] * np.array([1.0, 0.5, 0.5])
        return _rgb(ycc + rng.normal(0.0, 1.0, ycc.shape) * std)
    if distortion == "jpeg":
        return block_dct_jpeg(image, JPEG_QUALITY[level])
    if distortion == "contrast":
        return np.asarray(ImageEnhance.Contrast(Image.fromarray(image)).enhance(CONTRAST_FACTOR[level]))
    raise ValueError(f"unknown held-out distortion {distortion!r}; known: {HELDOUT_DISTORTIONS}")


def _ycbcr(image: np.ndarray) -> np.ndarray:
    ycc = image.astype(np.float64) @ _TO_YCBCR.T
    ycc[..., 1:] += 128
    return ycc


def _rgb(ycc: np.ndarray) -> np.ndarray:
    centred = ycc.copy()
    centred[..., 1:] -= 128
    return np.clip(centred @ np.linalg.inv(_TO_YCBCR).T, 0, 255).round().astype(np.uint8)


def _quantised(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """8x8 block DCT, quantise with `table`, inverse: the lossy core of baseline JPEG (no entropy coding)."""
    height, width = plane.shape
    padded = np.pad(plane - 128, ((0, -height % 8), (0, -width % 8)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // 8, 8, padded.shape[1] // 8, 8).transpose(0, 2, 1, 3)
    coefficients = fft.dctn(blocks, axes=(2, 3), norm="ortho")
    restored = fft.idctn(np.round(coefficients / table) * table, axes=(2, 3), norm="ortho")
    return restored.transpose(0, 2, 1, 3).reshape(padded.shape)[:height, :width] + 128


def block_dct_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality  # the IJG quality rule
    luma_table, chroma_table = (np.clip(np.floor((t * scale + 50) / 100), 1, 255) for t in (LUMA_TABLE, CHROMA_TABLE))
    ycc = _ycbcr(image)
    height, width = image.shape[:2]
    out = np.empty_like(ycc)
    out[..., 0] = _quantised(ycc[..., 0], luma_table)
    for channel in (1, 2):  # 4:2:0: chroma averaged over 2x2, quantised, repeated back
        plane = np.pad(ycc[..., channel], ((0, height % 2), (0, width % 2)), mode="edge")
        small = plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).mean(axis=(1, 3))
        out[..., channel] = np.repeat(np.repeat(_quantised(small, chroma_table), 2, 0), 2, 1)[:height, :width]
    return _rgb(out)
