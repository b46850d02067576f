"""VQAThinker's temporal-consistency bonus (the trainer's `temporal` block).

The prompts are rolled out a second time on temporally perturbed frames (rollout/ draws one perturbation
per video); a model that actually uses the frame order should do worse on the perturbed copies.
"""

import numpy as np

from rewards.groups import Groups

_F32 = np.float32
TEMPORAL_BONUS = 0.3


def _batch_mean(values: np.ndarray) -> np.float32:
    # The official `rewards_per_func[:, k].mean()` is a float32 mean of a strided column; the mean is taken
    # in double and rounded, which can differ from torch's order only at an exact tie of the two means.
    return _F32(np.mean(values)) if values.size else _F32(np.nan)


def temporal_bonus(original: Groups, perturbed: Groups) -> np.ndarray:
    """Bonus for each ORIGINAL rollout: 0, 0.3 or 0.6, decided once for the whole batch.

    If mean(rank, originals) >= mean(rank, perturbed): +0.3 to every original whose rank > 0.5;
    independently if mean(regression, originals) >= mean(regression, perturbed): +0.3 to every original
    whose regression > 0.9 (float32 compares, as on the official float32 reward tensor). `rank` and
    `regression` are the components already computed on each variant as its own batch. No perturbed
    rollouts: no comparison, no bonus.
    """
    bonus = np.zeros(original.pred.shape)
    if perturbed.pred.size == 0:
        return bonus
    for name, threshold in (("rank", 0.5), ("regression", 0.9)):
        mine, theirs = original.scores[name].astype(_F32), perturbed.scores[name].astype(_F32)
        if _batch_mean(mine) >= _batch_mean(theirs):
            bonus += np.where(mine > _F32(threshold), TEMPORAL_BONUS, 0.0)
    return bonus
