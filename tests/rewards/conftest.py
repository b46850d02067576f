"""Builds the (B prompts x G responses) view that group components take, from plain lists."""

import numpy as np
import pytest

from rewards.groups import Groups


@pytest.fixture
def make_groups():
    def make(pred, mos, aspects=None, scores=None):
        pred = np.asarray(pred, dtype=np.float64)
        aspects = np.zeros(pred.shape + (0,)) if aspects is None else np.asarray(aspects, dtype=np.float64)
        scores = {k: np.asarray(v, dtype=np.float64) for k, v in (scores or {}).items()}
        return Groups(pred, aspects, np.isnan(pred), np.asarray(mos, dtype=np.float64), scores)

    return make
