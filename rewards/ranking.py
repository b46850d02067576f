"""VisualQuality-R1's Thurstone fidelity rank (also VQAThinker's `rank` and qthink's)."""

import numpy as np
from scipy.special import erf

from rewards.groups import Groups, mos_relation, sum_over_others
from rewards.parsing import FAILED_PARSE_STAND_IN
from rewards.torch_float32 import torch_mean, torch_var

_EPS = np.float32(1e-6)
_SQRT2 = np.float32(np.sqrt(2.0))


def thurstone_fidelity_rank(groups: Groups) -> np.ndarray:
    """Fidelity of each response's ranking against every OTHER prompt's group mean.

    For response j of prompt i and each prompt z != i (VisualQuality-R1 accuracy_reward, float32):
    P = Phi((p_ij - mean_z) / sqrt(var_i + var_z + 1e-6)) with UNBIASED group variances (zero-variance
    groups are legal), g = 1 / 0 / 0.5 as y_i >, <, = y_z, F = sqrt(P g + 1e-6) + sqrt((1-P)(1-g) + 1e-6),
    averaged over z by a sequential float32 sum. A perfect answer scores about 1.001.
    One prompt: the official code divides by zero; 0 here. A failed parse scores 0 and enters its
    group's mean and variance as `FAILED_PARSE_STAND_IN`.
    """
    n_prompts = groups.n_prompts
    if n_prompts < 2:
        return np.zeros(groups.pred.shape)
    pred = np.where(groups.failed, FAILED_PARSE_STAND_IN, groups.pred).astype(np.float32)
    mean, var = torch_mean(pred), torch_var(pred, correction=1)
    # Layout [z, i, j]: z is the compared prompt, (i, j) the scored response. In-place float32 steps keep
    # the B x B x G temporaries to three (same values as the out-of-place expression).
    with np.errstate(over="ignore"):
        spread = np.sqrt(var[None, :, None] + var[:, None, None] + _EPS)
    p = pred[None, :, :] - mean[:, None, None]
    p /= spread
    p /= _SQRT2
    erf(p, out=p)
    p += np.float32(1)
    p *= np.float32(0.5)  # Phi as torch's Normal(0, 1).cdf: 0.5 * (1 + erf(x / sqrt(2)))
    g = mos_relation(groups.mos)[:, :, None]
    fidelity = np.sqrt(p * g + _EPS)
    p -= np.float32(1)  # p - 1; times (g - 1) below gives (1 - p)(1 - g) exactly
    p *= g - np.float32(1)
    p += _EPS
    fidelity += np.sqrt(p, out=p)
    reward = sum_over_others(fidelity) / np.float32(n_prompts - 1)
    return np.where(groups.failed, 0.0, reward.astype(np.float64))
