"""The agreement metrics the IQA/VQA literature reports: SRCC, KRCC, PLCC (raw and after a logistic fit), RMSE.

PLCC is conventionally reported after mapping predictions through the 5-parameter logistic of the VQEG
FR-TV Phase I report (also used by Q-Ponder, VisualQuality-R1 and VQAThinker's evaluation scripts),
which removes a monotone non-linearity between a model's scale and the MOS before measuring linearity:

    f(x) = b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5

A fit that fails (no convergence, degenerate data) falls back to the raw PLCC and says so
(`plcc_logistic_fitted = False`), so a report never silently mixes the two.

Conventions: pairs with a non-finite prediction (an unparsed answer) are dropped and counted in
`n_invalid`; a correlation that is undefined (fewer than 2 pairs, or a constant prediction, as from an
untrained model) is reported as 0.0 rather than NaN, so training curves stay plottable.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize, stats


def logistic_5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def _defined(pred: np.ndarray, mos: np.ndarray) -> bool:
    return len(pred) >= 2 and np.ptp(pred) > 0 and np.ptp(mos) > 0


def srcc(pred, mos) -> float:
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    return float(stats.spearmanr(pred, mos)[0]) if _defined(pred, mos) else 0.0


def krcc(pred, mos) -> float:
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    return float(stats.kendalltau(pred, mos)[0]) if _defined(pred, mos) else 0.0


def plcc(pred, mos) -> float:
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    return float(stats.pearsonr(pred, mos)[0]) if _defined(pred, mos) else 0.0


def rmse(pred, mos) -> float:
    """Root mean squared error on the MOS scale itself (predictions are already on [1, 5])."""
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    return float(np.sqrt(np.mean((pred - mos) ** 2))) if len(pred) else 0.0


def plcc_logistic(pred, mos) -> tuple[float, bool]:
    """PLCC between the MOS and the 5-parameter logistic fit of the predictions; (value, fitted).

    `fitted` is False when the fit failed and the value is the raw PLCC.
    """
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    if not _defined(pred, mos) or len(pred) < 5:
        return plcc(pred, mos), False
    # The usual starting point: the logistic spans the MOS range, centred on the mean prediction.
    initial = [np.max(mos) - np.min(mos), 1.0 / (np.std(pred) + 1e-12), np.mean(pred), 0.0, np.mean(mos)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exp overflow while exploring, OptimizeWarning
            params, _ = optimize.curve_fit(logistic_5, pred, mos, p0=initial, maxfev=20000)
            fitted = logistic_5(pred, *params)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return plcc(pred, mos), False
    if not np.all(np.isfinite(fitted)) or np.ptp(fitted) == 0:
        return plcc(pred, mos), False
    return float(stats.pearsonr(fitted, mos)[0]), True


def _metrics_of(pred: np.ndarray, mos: np.ndarray) -> dict:
    valid = np.isfinite(pred)
    pred, mos = pred[valid], mos[valid]
    logistic, fitted = plcc_logistic(pred, mos)
    return {"n": int(valid.sum()), "n_invalid": int((~valid).sum()), "srcc": srcc(pred, mos),
            "krcc": krcc(pred, mos), "plcc": plcc(pred, mos), "plcc_logistic": logistic,
            "plcc_logistic_fitted": fitted, "rmse": rmse(pred, mos)}


def quality_metrics(pred, mos, groups=None) -> dict:
    """Every metric overall and, when `groups` (e.g. dataset names, one per item) is given, per group.

    Returns {"overall": {...}, "groups": {name: {...}}}; each entry holds n, n_invalid, srcc, krcc, plcc,
    plcc_logistic, plcc_logistic_fitted and rmse.
    """
    pred, mos = np.asarray(pred, dtype=float), np.asarray(mos, dtype=float)
    if pred.shape != mos.shape or pred.ndim != 1:
        raise ValueError(f"pred and mos must be 1-d of equal length, got {pred.shape} and {mos.shape}")
    result = {"overall": _metrics_of(pred, mos), "groups": {}}
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != pred.shape:
            raise ValueError(f"groups must have one entry per item, got {groups.shape} for {pred.shape}")
        for name in sorted(set(groups.tolist())):
            members = groups == name
            result["groups"][str(name)] = _metrics_of(pred[members], mos[members])
    return result


def pristine_above_worst(pred, severity, source, worst: int = 5) -> dict | None:
    """How often a pristine item (severity 0) scores above a worst-severity item of the same source content:
    {"fraction", "pairs"}, ties counted half; None when no such pair exists. SRCC pools every level and type;
    this asks the one question a user checks first, whether a clean picture beats its ruined copies."""
    pred, severity, source = np.asarray(pred, float), np.asarray(severity), np.asarray(source)
    wins, pairs = 0.0, 0
    for name in set(source[severity == 0].tolist()):
        clean = pred[(source == name) & (severity == 0) & np.isfinite(pred)]
        ruined = pred[(source == name) & (severity == worst) & np.isfinite(pred)]
        diff = clean[:, None] - ruined[None, :]
        wins += float((diff > 0).sum() + 0.5 * (diff == 0).sum())
        pairs += diff.size
    return {"fraction": wins / pairs, "pairs": pairs} if pairs else None


def srcc_gain_ci(before, after, mos, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """SRCC(after) - SRCC(before) on the same items, with a paired bootstrap interval over items: the two
    models see each resample together, so the interval is of the gain, not of two noisy numbers. Items
    either model failed to score are left out."""
    before, after, mos = (np.asarray(x, float) for x in (before, after, mos))
    keep = np.isfinite(before) & np.isfinite(after)
    before, after, mos = before[keep], after[keep], mos[keep]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(mos), len(mos))
        draws.append(srcc(after[idx], mos[idx]) - srcc(before[idx], mos[idx]))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail]) if draws else (0.0, 0.0)
    return {"gain": srcc(after, mos) - srcc(before, mos), "low": float(low), "high": float(high), "n": int(len(mos))}
