"""PreResQ-R1 components: std penalty, triplet balance, pair, triplet, group rank, accuracy."""

import math
from itertools import combinations

import numpy as np
import pytest

from rewards import preresq

f32 = np.float32


def test_std_penalty_by_hand():
    aspects = np.array([[3.0] * 5, [1, 2, 3, 4, 5], [3.0, 3.2, 3.4, 3.6, 3.8]])
    penalty = preresq.aspect_std_penalty(aspects)
    assert penalty[0] == 0.25  # s = 0: 0.5 * (0.5 - 0)
    assert penalty[1] == 0.0  # s = sqrt(2) >= 0.5
    # mean 3.4, squared deviations .16 .04 0 .04 .16 -> var 0.08, s = 0.28284: 0.5 * (0.5 - 0.28284) = 0.10858
    assert penalty[2] == pytest.approx(0.5 * (0.5 - math.sqrt(0.08)), abs=1e-7)


def test_std_penalty_two_aspects_is_half_the_gap():
    # VQA: population std of (a, b) = |a - b| / 2 = 0.2 -> 0.5 * (0.5 - 0.2) = 0.15
    assert preresq.aspect_std_penalty(np.array([[3.0, 3.4]]))[0] == pytest.approx(0.15, abs=1e-7)


def balance_groups(make_groups, rows):
    rows = np.asarray(rows, dtype=float)
    return make_groups(rows.mean(axis=1)[None], [3.0], aspects=rows[None])


def test_balance_one_triple_by_hand(make_groups):
    # G = 3 -> one triple; every dim sorts 3.0 (r0) < 3.04 (r1) < 4.0 (r2): r1 is the middle (+1),
    # |3.0 - 3.04| < 0.05 (+1 for r0), |4.0 - 3.04| is not. 4 dims: gains 4, 4, 0 of 4 -> 1, 1, 0, x 0.5.
    rows = [[3.0] * 5, [3.04] * 5, [4.0] * 5]
    assert preresq.triplet_balance(balance_groups(make_groups, rows), n_dims=4).tolist() == [[0.5, 0.5, 0.0]]


def test_balance_ignores_the_fifth_aspect(make_groups):
    rows = [[3.0, 3.0, 3.0, 3.0, 1.0], [3.0, 3.0, 3.0, 3.0, 5.0], [3.0, 3.0, 3.0, 3.0, 9.0]]
    # ties keep response order: middle r1 +1; r0 and r2 are 0 away from it: +1 each, every dim
    assert preresq.triplet_balance(balance_groups(make_groups, rows), n_dims=4).tolist() == [[0.5, 0.5, 0.5]]


def test_balance_tolerance_is_fragile_in_double(make_groups):
    # 3.50 - 3.45 = 0.04999999999999982 counts; 3.45 - 3.40 = 0.05000000000000027 does not
    counts = balance_groups(make_groups, [[3.45] * 5, [3.50] * 5, [9.0] * 5])
    misses = balance_groups(make_groups, [[3.40] * 5, [3.45] * 5, [9.0] * 5])
    assert preresq.triplet_balance(counts, n_dims=4)[0, 0] == 0.5
    assert preresq.triplet_balance(misses, n_dims=4)[0, 0] == 0.0


def test_balance_needs_three_responses(make_groups):
    assert preresq.triplet_balance(balance_groups(make_groups, [[3.0] * 5, [3.0] * 5]), n_dims=4).tolist() == [
        [0.0, 0.0]
    ]


def naive_balance(aspects, n_dims):
    """docs/rewards.md: every 3-subset, stable sort, middle +1, ends +1 within 0.05; / (triples x dims) x 0.5."""
    size = len(aspects)
    gain, triples = np.zeros(size), np.zeros(size)
    for triple in combinations(range(size), 3):
        triples[list(triple)] += 1
        for d in range(n_dims):
            (lo, a), (mid, b), (hi, c) = sorted(((aspects[k][d], k) for k in triple), key=lambda t: t[0])
            gain[b] += 1
            gain[a] += abs(lo - mid) < 0.05
            gain[c] += abs(hi - mid) < 0.05
    return 0.5 * gain / (triples * n_dims)


@pytest.mark.parametrize("seed", range(4))
def test_balance_matches_naive_loop(make_groups, seed):
    rng = np.random.default_rng(seed)
    aspects = np.round(rng.uniform(3, 3.3, (3, 6, 5)), 2)  # close values: many within 0.05, many ties
    groups = make_groups(aspects.mean(axis=2), [3, 4, 2], aspects=aspects)
    expected = np.array([naive_balance(a, 4) for a in aspects])
    assert preresq.triplet_balance(groups, n_dims=4) == pytest.approx(expected, abs=1e-7)


def test_pair_one_response_each_by_hand(make_groups):
    # y = 4 vs 2, p = 3.5 vs 2.5: same order (c = 1), s = 2 / (2 + 0.5 + 0.5) = 2/3 -> sqrt(2/3) for both
    reward = preresq.pairwise_score_rank(make_groups([[3.5], [2.5]], [4, 2]))
    assert reward == pytest.approx(np.full((2, 1), math.sqrt(2 / 3)), abs=1e-6)


def test_pair_compares_same_sorted_position(make_groups):
    # prompt 0: preds [4.0, 3.0] (y 3.5) sort to [3.0, 4.0]; prompt 1: [1.0, 2.5] (y 1.5)
    # position 0: 3.0 vs 1.0, c = 1, s = 2 / (2 + 0.5 + 0.5) -> sqrt(2/3) goes to prompt 0's response 1
    # position 1: 4.0 vs 2.5, c = 1, s = 2 / (2 + 0.5 + 1.0) -> sqrt(4/7) goes to prompt 0's response 0
    reward = preresq.pairwise_score_rank(make_groups([[4.0, 3.0], [1.0, 2.5]], [3.5, 1.5]))
    assert reward[0] == pytest.approx([math.sqrt(4 / 7), math.sqrt(2 / 3)], abs=1e-6)


def test_pair_equal_mos_quirk(make_groups):
    # equal MOS: s = 0. Different predictions: relations differ (0.5 vs 1/0), c = 0 -> sqrt(1 - 0) = 1.
    assert preresq.pairwise_score_rank(make_groups([[3.2], [2.9]], [3, 3])).tolist() == [[1.0], [1.0]]
    # Equal predictions: c = 1 -> sqrt(0) = 0; and 0/0 (both exact) is 0 here, the official NaN.
    assert preresq.pairwise_score_rank(make_groups([[3.1], [3.1]], [3, 3])).tolist() == [[0.0], [0.0]]
    assert preresq.pairwise_score_rank(make_groups([[3.0], [3.0]], [3, 3])).tolist() == [[0.0], [0.0]]


def test_pair_one_prompt_scores_zero(make_groups):
    assert preresq.pairwise_score_rank(make_groups([[3.0, 4.0]], [3])).tolist() == [[0.0, 0.0]]


def naive_pair(pred, mos):
    n_prompts, size = pred.shape
    out = np.zeros_like(pred)
    rel = lambda a, b: 1.0 if a > b else 0.0 if a < b else 0.5  # noqa: E731
    for i in range(n_prompts):
        order = sorted(range(size), key=lambda k: pred[i, k])
        for r, j in enumerate(order):
            terms = []
            for z in range(n_prompts):
                if z != i:
                    pz = sorted(pred[z])[r]
                    c = 1.0 if rel(pred[i, j], pz) == rel(mos[i], mos[z]) else 0.0
                    gap = abs(mos[i] - mos[z])
                    s = gap / (gap + abs(pred[i, j] - mos[i]) + abs(pz - mos[z]))
                    terms.append(math.sqrt(c * s) + math.sqrt((1 - c) * (1 - s)))
            out[i, j] = sum(terms) / len(terms)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_pair_matches_naive_loop(make_groups, seed):
    rng = np.random.default_rng(seed)
    pred = np.round(rng.uniform(1, 5, (5, 4)), 1)
    mos = np.round(rng.uniform(1, 5, 5), 2)
    assert preresq.pairwise_score_rank(make_groups(pred, mos)) == pytest.approx(naive_pair(pred, mos), abs=1e-6)


def test_triplet_by_hand_with_ties(make_groups):
    # one response per prompt, p = [2, 2, 1], y = [3, 2, 1]
    # i=0, pair (1,2): (0,1) 2>2 F vs 3>2 T disagree; (1,2) T/T; (0,2) T/T -> 2/3
    # i=1, pair (0,2): (1,0) F/F agree (tie on one side only counts as False); (0,2) T/T; (1,2) T/T -> 1
    # i=2, pair (0,1): (2,0) F/F; (0,1) F/T disagree; (2,1) F/F -> 2/3
    reward = preresq.triplet_ranking(make_groups([[2.0], [2.0], [1.0]], [3, 2, 1]))
    assert reward[:, 0].tolist() == [float(f32(2 / 3)), 1.0, float(f32(2 / 3))]


def test_triplet_needs_three_prompts(make_groups):
    assert preresq.triplet_ranking(make_groups([[2.0], [1.0]], [3, 1])).tolist() == [[0.0], [0.0]]


def naive_triplet(pred, mos):
    """docs/rewards.md loop: response j of i, every pair a < b of other prompts, their j-th responses."""
    n_prompts, size = pred.shape
    out = np.zeros_like(pred)
    for i in range(n_prompts):
        others = [k for k in range(n_prompts) if k != i]
        for j in range(size):
            values = []
            for a, b in combinations(others, 2):
                agree = sum(
                    (pred[m, j] > pred[n, j]) == (mos[m] > mos[n]) for m, n in ((i, a), (a, b), (i, b))
                )
                values.append(agree / 3.0)
            out[i, j] = np.mean(values)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_triplet_fast_form_matches_naive_loop(make_groups, seed):
    rng = np.random.default_rng(seed)
    n_prompts, size = rng.integers(3, 9), rng.integers(1, 6)
    pred = np.round(rng.uniform(1, 5, (n_prompts, size)), 0)  # integers: many ties
    mos = np.round(rng.uniform(1, 5, n_prompts), 0)
    assert preresq.triplet_ranking(make_groups(pred, mos)) == pytest.approx(naive_triplet(pred, mos), abs=1e-7)


def test_group_rank_by_hand(make_groups):
    # values [3, 4, 2 | y = 3.5] sort to 2, 3, 3.5, 4: positions p0 = 1, p1 = 3, p2 = 0, y = 2; G + 1 = 4
    reward = preresq.group_rank(make_groups([[3.0, 4.0, 2.0]], [3.5]))
    assert reward[0] == pytest.approx([math.exp(-1 / 4), math.exp(-1 / 4), math.exp(-2 / 4)], abs=1e-7)


def test_group_rank_close_answer_and_ties(make_groups):
    # |3.51 - 3.5| < 0.02 -> 1.0
    assert preresq.group_rank(make_groups([[3.51, 4.0, 2.0]], [3.5]))[0, 0] == 1.0
    # ties: both 3.0 take the first equal element's position (0); y sorts after them at 2
    reward = preresq.group_rank(make_groups([[3.0, 3.0, 5.0]], [4.0]))
    assert reward[0] == pytest.approx([math.exp(-2 / 4), math.exp(-2 / 4), math.exp(-1 / 4)], abs=1e-7)


def test_group_rank_prediction_equal_to_mos_sorts_before_it(make_groups):
    # y = 3.0 is appended last: a prediction 3.0 is close (1.0); 2.0 at 0, y at 2 (after 2.0 and 3.0)
    reward = preresq.group_rank(make_groups([[3.0, 2.0, 4.0]], [3.0]))
    assert reward[0] == pytest.approx([1.0, math.exp(-2 / 4), math.exp(-1 / 4)], abs=1e-7)


def test_accuracy_iqa_by_hand(make_groups):
    scores = {
        "pair": [[0.8] * 3],
        "std_penalty": [[0.1] * 3],
        "balance": [[0.4] * 3],
        "triplet": [[2 / 3] * 3],
        "group_rank": [[1.0] * 3],
    }
    groups = make_groups([[3.0] * 3], [3.0], scores=scores)
    # (0.375 * 0.8 - 0.1 + 0.5 * 0.4 + 0.125 * 2/3 + 1) / 3 = (0.3 - 0.1 + 0.2 + 0.083333 + 1) / 3 = 0.494444
    assert preresq.preresq_accuracy(groups, with_group_rank=True) == pytest.approx(
        np.full((1, 3), 1.483333333 / 3), abs=1e-6
    )
    # VQA: no group_rank, no division: 0.483333
    assert preresq.preresq_accuracy(groups, with_group_rank=False) == pytest.approx(
        np.full((1, 3), 0.483333333), abs=1e-6
    )


def test_accuracy_zero_below_three_responses(make_groups):
    scores = {k: [[0.5, 0.5]] for k in ("pair", "std_penalty", "balance", "triplet", "group_rank")}
    assert preresq.preresq_accuracy(make_groups([[3.0, 3.0]], [3.0], scores=scores), True).tolist() == [[0.0, 0.0]]
