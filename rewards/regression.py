"""Per-response score rewards: the Gaussian ("bell-shaped") regression and Q-Insight's threshold."""

import numpy as np


def has_coarse_decimals(pred: float) -> bool:
    """VQAThinker's decimal check on the parsed float's repr, trailing zeros dropped.

    `len(str(p).split('.')[-1].rstrip('0')) < 2`: "3.10", "3.00", "3.0", "3" are coarse, "3.456" is not;
    a repr without '.' ("1e-07", "1e+16") counts as zero decimals, as in the official code.
    """
    text = str(float(pred))
    return "." not in text or len(text.split(".")[-1].rstrip("0")) < 2


def gaussian_regression(
    pred: np.ndarray, mos: np.ndarray, sigma: float = 0.5, coarse_factor: float | None = None
) -> np.ndarray:
    """exp(-(p - y)^2 / (2 sigma^2)), no clipping; 0 where the answer did not parse.

    Official order (VQAThinker regression_reward): the exponent in double, rounded to float32, exp in
    float32; with `coarse_factor` (VQAThinker: 0.8) a coarse answer's reward is multiplied in float32.
    q-ponder and qthink use it without the factor.
    """
    parsed = ~np.isnan(pred)
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.abs(pred - mos)
        exponent = (-(diff**2) / (2 * sigma**2)).astype(np.float32)
        reward = np.exp(exponent)
    if coarse_factor is not None:
        coarse = np.array([parsed[k] and has_coarse_decimals(p) for k, p in enumerate(pred)], dtype=bool)
        reward = np.where(coarse, reward * np.float32(coarse_factor), reward)
    return np.where(parsed, reward, np.float32(0)).astype(np.float64)


def threshold_accuracy(pred: np.ndarray, mos: np.ndarray, tolerance: float = 0.35) -> np.ndarray:
    """Q-Insight: 1 iff |p - y| < tolerance, strict, in double (3.35 vs 3.0 is 0.35000000000000009: 0)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(pred - mos) < tolerance).astype(np.float64)  # NaN compares False -> 0
