"""Thurstone fidelity rank (VisualQuality-R1; VQAThinker's `rank`)."""

import math
from itertools import product

import numpy as np
import pytest

from rewards.ranking import thurstone_fidelity_rank


def phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def fidelity(p, g):
    return math.sqrt(p * g + 1e-6) + math.sqrt((1 - p) * (1 - g) + 1e-6)


def test_two_prompts_by_hand(make_groups):
    # prompt 0: preds 3, 4 (y = 4): mean 3.5, unbiased var (0.25 + 0.25) / 1 = 0.5
    # prompt 1: preds 2, 2 (y = 2): mean 2, var 0 (zero-variance groups are legal)
    reward = thurstone_fidelity_rank(make_groups([[3, 4], [2, 2]], [4, 2]))
    # response (0, 0) vs prompt 1: P = Phi((3 - 2) / sqrt(0.5 + 0 + 1e-6)), y0 > y1 -> g = 1
    assert reward[0, 0] == pytest.approx(fidelity(phi(1 / math.sqrt(0.500001)), 1.0), abs=1e-6)
    assert reward[0, 1] == pytest.approx(fidelity(phi(2 / math.sqrt(0.500001)), 1.0), abs=1e-6)
    # response (1, j) = 2 vs prompt 0's mean 3.5: P = Phi(-1.5 / sqrt(0.500001)), g = 0
    assert reward[1, 0] == pytest.approx(fidelity(phi(-1.5 / math.sqrt(0.500001)), 0.0), abs=1e-6)


def test_equal_mos_gives_half(make_groups):
    # g = 0.5 and P = Phi(0) = 0.5 (same predictions): 2 * sqrt(0.25 + 1e-6) = 1.000002
    reward = thurstone_fidelity_rank(make_groups([[3, 3], [3, 3]], [2.5, 2.5]))
    assert reward == pytest.approx(np.full((2, 2), 2 * math.sqrt(0.250001)), abs=1e-6)


def test_perfect_answer_scores_about_1001(make_groups):
    reward = thurstone_fidelity_rank(make_groups([[5, 5], [1, 1]], [5, 1]))
    # P = Phi(4 / sqrt(1e-6)) = 1: sqrt(1 + 1e-6) + sqrt(1e-6)
    assert reward == pytest.approx(np.full((2, 2), math.sqrt(1.000001) + 0.001), abs=1e-6)


def test_one_prompt_scores_zero(make_groups):
    assert thurstone_fidelity_rank(make_groups([[3, 4, 5]], [4])).tolist() == [[0.0, 0.0, 0.0]]


def test_failed_parse_scores_zero_and_stands_in_as_three(make_groups):
    # prompt 0's failure enters its group stats as 3.0: the same as if it had answered 3.0
    with_failure = thurstone_fidelity_rank(make_groups([[np.nan, 4], [2, 2.5]], [4, 2]))
    as_three = thurstone_fidelity_rank(make_groups([[3.0, 4], [2, 2.5]], [4, 2]))
    assert with_failure[0, 0] == 0.0
    assert with_failure[0, 1] == as_three[0, 1] and np.array_equal(with_failure[1], as_three[1])


def naive_fidelity_rank(pred, mos):
    """docs/rewards.md, loop for loop, in double."""
    pred = np.asarray(pred, dtype=float)
    n_prompts, size = pred.shape
    mean, var = pred.mean(axis=1), pred.var(axis=1, ddof=1)
    out = np.zeros_like(pred)
    for i, j in product(range(n_prompts), range(size)):
        terms = []
        for z in range(n_prompts):
            if z != i:
                p = phi((pred[i, j] - mean[z]) / math.sqrt(var[i] + var[z] + 1e-6))
                g = 1.0 if mos[i] > mos[z] else 0.0 if mos[i] < mos[z] else 0.5
                terms.append(fidelity(p, g))
        out[i, j] = sum(terms) / len(terms)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_naive_loop(make_groups, seed):
    rng = np.random.default_rng(seed)
    n_prompts, size = rng.integers(2, 7), rng.integers(2, 7)
    pred = np.round(rng.uniform(1, 5, (n_prompts, size)), 2)
    mos = np.round(rng.uniform(1, 5, n_prompts), 1)
    assert thurstone_fidelity_rank(make_groups(pred, mos)) == pytest.approx(
        naive_fidelity_rank(pred, mos), abs=2e-6
    )
