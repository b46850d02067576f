"""The view that cross-response components get: one (sub-)batch as B prompts x G responses."""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Groups:
    """B prompts x G consecutive responses, row-major; `mos` is one value per prompt.

    `scores` holds the components computed before this one (per-response ones and earlier group
    components of the preset), shaped (B, G), so composite terms such as PreResQ's accuracy can read them.
    """

    pred: np.ndarray  # float64 (B, G), NaN where the answer did not parse
    aspects: np.ndarray  # float64 (B, G, k)
    failed: np.ndarray  # bool (B, G)
    mos: np.ndarray  # float64 (B,)
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return self.pred.shape[0]

    @property
    def group_size(self) -> int:
        return self.pred.shape[1]


def mos_relation(mos: np.ndarray) -> np.ndarray:
    """rel[z, i] = 1 if y_i > y_z, 0 if y_i < y_z, 0.5 if equal (double compare), as float32."""
    y_i, y_z = mos[None, :], mos[:, None]
    return np.where(y_i > y_z, 1.0, np.where(y_i < y_z, 0.0, 0.5)).astype(np.float32)


def sum_over_others(terms: np.ndarray) -> np.ndarray:
    """Sum float32 terms[z, i, ...] over z != i, sequentially in z (the official Python loop order).

    Overwrites the z == i entries of `terms` with exact zeros (adding 0.0 leaves a float32 sum unchanged);
    numpy reduces a leading axis one slice at a time, which is the loop's order.
    """
    own = np.arange(terms.shape[0])
    terms[own, own] = 0
    return np.add.reduce(terms, axis=0)
