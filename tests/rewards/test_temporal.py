"""VQAThinker temporal bonus: decided once per batch from original vs perturbed means."""

import numpy as np
import pytest

from rewards import PRESETS, score_batch
from rewards.temporal import temporal_bonus


def test_bonus_by_hand(make_groups):
    # rank means 0.5 (orig) >= 0.3 (perturbed): +0.3 to originals with rank > 0.5 -> response 0 only
    # regression means 0.725 < 0.99: no regression bonus
    original = make_groups([[3, 3]], [3], scores={"rank": [[0.6, 0.4]], "regression": [[0.95, 0.5]]})
    perturbed = make_groups([[3, 3]], [3], scores={"rank": [[0.3, 0.3]], "regression": [[0.99, 0.99]]})
    assert temporal_bonus(original, perturbed).tolist() == [[0.3, 0.0]]


def test_both_bonuses_and_ties(make_groups):
    # equal means count (>=); regression > 0.9 strictly: 0.9 itself gets nothing
    original = make_groups(
        [[3, 3, 3]], [3], scores={"rank": [[0.9, 0.5, 0.7]], "regression": [[0.95, 0.9, 0.2]]}
    )
    perturbed = make_groups(
        [[3, 3, 3]], [3], scores={"rank": [[0.7, 0.7, 0.7]], "regression": [[0.95, 0.9, 0.2]]}
    )
    assert temporal_bonus(original, perturbed) == pytest.approx(np.array([[0.6, 0.0, 0.3]]))


def test_no_perturbed_rollouts_no_bonus(make_groups):
    original = make_groups([[3, 3]], [3], scores={"rank": [[0.9, 0.9]], "regression": [[1.0, 1.0]]})
    empty = make_groups(
        np.zeros((0, 2)), [], scores={"rank": np.zeros((0, 2)), "regression": np.zeros((0, 2))}
    )
    assert temporal_bonus(original, empty).tolist() == [[0.0, 0.0]]


def test_perturbed_rows_rank_among_themselves_and_get_no_bonus():
    exact = "<think>t</think><answer>{}</answer>"
    # two decimals each ("4.50" would be coarse: x 0.8 < 0.9)
    responses = [exact.format(v) for v in ("4.51", "4.52", "1.51", "1.52")]  # originals: well ranked
    responses += [exact.format(v) for v in ("1.51", "1.52", "4.51", "4.52")]  # perturbed: inverted
    mos, ids = [4.5, 4.5, 1.5, 1.5] * 2, ["a", "a", "b", "b"] * 2
    variants = ["original"] * 4 + ["perturbed"] * 4
    result = score_batch(PRESETS["vqathinker"], responses, mos, ids, variants)
    alone = score_batch(PRESETS["vqathinker"], responses[4:], mos[4:], ids[4:])
    assert np.array_equal(result.components["rank"][4:], alone.components["rank"])
    # originals win both means; every original has rank > 0.5 and regression > 0.9 -> 0.6
    assert result.components["temporal"].tolist() == [0.6] * 4 + [0.0] * 4


def test_with_ranking_in_slices_a_video_is_compared_with_its_own_perturbed_copy():
    """rank_scope=slice, one prompt per slice: the picture "a" has no perturbed copy and gets no bonus; the
    video "b" is compared with its own copy. Pairing slices by position compared "a" with b's copy."""
    exact = "<think>t</think><answer>{}</answer>"
    responses = [exact.format(v) for v in ("4.51", "4.49", "1.51", "1.49")]  # a and b: both answered right
    responses += [exact.format(v) for v in ("4.21", "4.32")]  # b's copy: far off its MOS of 1.5
    ids, mos = ["a", "a", "b", "b", "b", "b"], [4.5, 4.5, 1.5, 1.5, 1.5, 1.5]
    variants = ["original"] * 4 + ["perturbed"] * 2
    result = score_batch(PRESETS["vqathinker"], responses, mos, ids, variants, scope=1)
    alone = score_batch(PRESETS["vqathinker"], responses[2:], mos[2:], ids[2:], variants[2:])
    # b's regression beats its copy's: +0.3 to b's responses with regression > 0.9; a has nothing to beat
    assert result.components["temporal"].tolist() == [0.0, 0.0, 0.3, 0.3, 0.0, 0.0]
    assert result.components["temporal"][2:].tolist() == alone.components["temporal"].tolist()
