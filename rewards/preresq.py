"""PreResQ-R1's dual-branch reward (General-Visual-Quality-RL, grpo_preres_IQA_r1.py / _VQA_r1.py).

Response branch: `aspect_std_penalty`, `triplet_balance`, `group_rank`. Preference branch:
`pairwise_score_rank` (pair), `triplet_ranking` (triplet). `preresq_accuracy` joins them as the official
accuracy_reward does, in its float32 / double order.
"""

from itertools import combinations
from math import comb

import numpy as np

from rewards.groups import Groups, sum_over_others
from rewards.torch_float32 import torch_std

_F32 = np.float32
_BALANCE_TOLERANCE = 0.05


def aspect_std_penalty(aspects: np.ndarray) -> np.ndarray:
    """0.5 * (0.5 - s) when s < 0.5 else 0, s = POPULATION std of a response's aspect ratings (float32).

    Penalises answers that give every aspect the same rating. Range [0, 0.25].
    """
    spread = torch_std(aspects.astype(_F32), correction=0)
    return np.where(spread < _F32(0.5), _F32(0.5) * (_F32(0.5) - spread), _F32(0)).astype(np.float64)


def triplet_balance(groups: Groups, n_dims: int) -> np.ndarray:
    """Coherence of a group's aspect ratings, over every 3-subset of the G responses.

    Per triple and aspect dim (IQA: dims 0..3, the 5th is ignored; VQA: both) the official code stable-
    sorts the three values; the middle gains 1, the min and the max each gain 1 if within 0.05 of the
    middle (double compare, fragile at the edge: 3.50-3.45 counts, 3.45-3.40 does not). That is: each
    member gains 1 iff |value - median| < 0.05 (the middle is 0 away; tie order cannot change a gain).
    gain / (triples containing the response x dims), float32, x 0.5. Range [0, 0.5]; G < 3: 0.
    """
    n_prompts, size = groups.pred.shape
    if size < 3:
        return np.zeros((n_prompts, size))
    triples = np.array(list(combinations(range(size), 3)))  # (C, 3)
    values = groups.aspects[:, triples, :n_dims]  # (B, C, 3, D)
    a, b, c = values[:, :, 0], values[:, :, 1], values[:, :, 2]
    median = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    gains = (np.abs(values - median[:, :, None]) < _BALANCE_TOLERANCE).sum(axis=3)  # (B, C, 3)
    membership = np.zeros((len(triples), 3, size))
    membership[np.arange(len(triples))[:, None], np.arange(3), triples] = 1
    gain = gains.reshape(n_prompts, -1) @ membership.reshape(-1, size)  # exact small integers
    balance = gain.astype(_F32) / _F32(comb(size - 1, 2) * n_dims)
    return (_F32(0.5) * balance).astype(np.float64)


def pairwise_score_rank(groups: Groups) -> np.ndarray:
    """Compare each prompt's k-th smallest prediction with the k-th smallest of every other prompt.

    c = 1 when the predictions order as the MOS do (1 / 0 / 0.5 relations equal), s = |y_i - y_z| /
    (|y_i - y_z| + |p - y_i| + |p_z - y_z|), term = sqrt(c s) + sqrt((1-c)(1-s)), float32 as the official;
    mean over z, written back to the response's original index. Equal MOS gives s = 0, so the term is 1
    whenever the two predictions differ (quirk kept). When the denominator is 0 (equal MOS, both
    predictions exact) the official 0/0 gives NaN; here s = 0, the term's limit (documented deviation).
    One prompt: 0.
    """
    n_prompts, size = groups.pred.shape
    if n_prompts < 2:
        return np.zeros((n_prompts, size))
    order = np.argsort(groups.pred, axis=1, kind="stable")
    ranked = np.take_along_axis(groups.pred, order, axis=1).astype(_F32)  # (B, G), float32-exact values
    # Layout [z, i, k]. Equal relations <=> equal signs of the differences (exact for finite floats).
    mos_sign = np.sign(groups.mos[None, :] - groups.mos[:, None])[:, :, None]
    agree = (np.sign(ranked[None, :, :] - ranked[:, None, :]) == mos_sign).astype(_F32)
    mos_gap = np.abs(groups.mos[None, :] - groups.mos[:, None]).astype(_F32)[:, :, None]
    error = np.abs(ranked - groups.mos.astype(_F32)[:, None])  # |p - y| in float32
    denominator = (mos_gap + error[None, :, :]) + error[:, None, :]
    share = np.divide(mos_gap, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    term = np.sqrt(agree * share)  # the official formula, term by term (a masked select is slower)
    disagree = _F32(1) - agree
    disagree *= _F32(1) - share
    term += np.sqrt(disagree, out=disagree)
    by_rank = sum_over_others(term) / _F32(n_prompts - 1)
    reward = np.empty((n_prompts, size))
    np.put_along_axis(reward, order, by_rank.astype(np.float64), axis=1)
    return reward


def triplet_ranking(groups: Groups) -> np.ndarray:
    """Ranking agreement over triplets of prompts, response j against the j-th responses (ORIGINAL index).

    For response j of prompt i and every pair a < b of other prompts, the pairs (i,a), (a,b), (i,b) each
    agree when `p_m > p_n` equals `y_m > y_n` (a tie on both sides agrees); mean of agreements / 3.
    Counted without enumerating pairs: sum over {a,b} of A[i,a] + A[i,b] = (B-2) sum_{a != i} A[i,a], and
    sum of A[a,b] over pairs avoiding i = all pairs minus those containing i. B <= 2: no pair; the
    official mean of nothing is NaN, 0 here (documented deviation). The official float32 mean of the
    per-pair values k/3 is reproduced to < 1e-7.
    """
    n_prompts, size = groups.pred.shape
    if n_prompts <= 2:
        return np.zeros((n_prompts, size))
    pred = np.ascontiguousarray(groups.pred.T)  # (G, B): column j of every prompt
    mos_greater = groups.mos[:, None] > groups.mos[None, :]
    agree = (pred[:, :, None] > pred[:, None, :]) == mos_greater  # [j, m, n]
    count = agree.view(np.uint8)  # summing bytes is several times faster than counting booleans
    with_others = count.sum(axis=2, dtype=np.int64) - 1  # the diagonal always agrees
    agree &= np.triu(np.ones((n_prompts, n_prompts), dtype=bool), k=1)  # keep pairs m < n
    as_first, as_second = (
        count.sum(axis=2, dtype=np.int64),
        count.sum(axis=1, dtype=np.int64),
    )  # (i, b>i), (a<i, i)
    total = (n_prompts - 2) * with_others + as_first.sum(axis=1, keepdims=True) - as_first - as_second
    return (total / (3.0 * comb(n_prompts - 1, 2))).astype(_F32).T.astype(np.float64)


def group_rank(groups: Groups) -> np.ndarray:
    """Where the MOS would sit among its group's predictions, against where each prediction sits.

    The G predictions plus y in float32, stable argsort ascending; 1.0 if |p - y| < 0.02 (double), else
    exp(-|pos(p) - pos(y)| / (G + 1)) in float32, pos = sorted position of the first element equal to
    the value (= count of smaller elements; y, appended last, also follows predictions equal to it).
    """
    size = groups.group_size
    pred32, mos32 = groups.pred.astype(_F32), groups.mos.astype(_F32)[:, None]
    values = np.concatenate([pred32, mos32], axis=1)  # (B, G+1)
    pred_position = (values[:, None, :] < pred32[:, :, None]).sum(axis=2)
    mos_position = (pred32 <= mos32).sum(axis=1, keepdims=True)
    spread = np.exp((-np.abs(pred_position - mos_position) / (size + 1)).astype(_F32))
    return np.where(np.abs(groups.pred - groups.mos[:, None]) < 0.02, 1.0, spread.astype(np.float64))


def preresq_accuracy(groups: Groups, with_group_rank: bool) -> np.ndarray:
    """0.375 pair - std_penalty + 0.5 balance + 0.125 triplet in float32 (balance is already x 0.5).

    IQA adds group_rank and divides by 3 in double, as `(r + float(rw)) / 3.0`; VQA stops before (and can
    be negative). G < 3: the official function returns zeros for the whole batch.
    """
    if groups.group_size < 3:
        return np.zeros(groups.pred.shape)
    s = {name: groups.scores[name].astype(_F32) for name in ("pair", "std_penalty", "balance", "triplet")}
    branch = (
        s["pair"] * _F32(0.375) - s["std_penalty"] + _F32(0.5) * s["balance"] + _F32(0.125) * s["triplet"]
    )
    if not with_group_rank:
        return branch.astype(np.float64)
    return (branch.astype(np.float64) + groups.scores["group_rank"]) / 3.0
