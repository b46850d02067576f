"""The six temporal perturbations of VQAThinker on decoded frames: shape kept, documented reordering, seeded."""

import collections

import numpy as np
import pytest

from rollout.perturbations import (
    BLACK,
    TemporalPerturbation,
    apply_indices,
    draw_perturbation,
    perturb,
    perturbation_indices,
)

T = 16


def labelled_frames(count=T) -> np.ndarray:
    """Frame i is filled with the value i + 1, so the output tells which source frame landed where."""
    return np.stack([np.full((4, 6, 3), i + 1, dtype=np.uint8) for i in range(count)])


def source_of(frames: np.ndarray) -> np.ndarray:
    return frames[:, 0, 0, 0].astype(int) - 1  # -1 for a black frame


@pytest.mark.parametrize("mode", list(TemporalPerturbation))
def test_shape_kept_input_untouched_and_indices_describe_output(mode):
    frames = labelled_frames()
    before = frames.copy()
    out, indices = perturb(frames, mode, rng_or_seed=3)
    assert out.shape == frames.shape and out.dtype == frames.dtype
    assert np.array_equal(frames, before)
    assert source_of(out).tolist() == indices.tolist()


@pytest.mark.parametrize("mode", list(TemporalPerturbation))
def test_same_seed_same_frames(mode):
    frames = labelled_frames()
    first, _ = perturb(frames, mode, 11)
    second, _ = perturb(frames, mode, np.random.default_rng(11))
    assert np.array_equal(first, second)


def test_shuffle_is_a_permutation():
    indices = perturbation_indices(T, TemporalPerturbation.SHUFFLE, 0)
    assert sorted(indices.tolist()) == list(range(T)) and indices.tolist() != list(range(T))


def test_local_shuffle_permutes_inside_windows_of_four():
    for seed in range(20):
        indices = perturbation_indices(18, "local_shuffle", seed)
        for start in range(0, 18, 4):
            assert sorted(indices[start:start + 4].tolist()) == list(range(start, min(start + 4, 18)))


def test_reverse():
    assert perturbation_indices(T, "reverse", 0).tolist() == list(range(T))[::-1]


def test_jitter_moves_each_frame_by_at_most_one_and_clamps():
    for seed in range(20):
        indices = perturbation_indices(T, "jitter", seed)
        assert np.all(np.abs(indices - np.arange(T)) <= 1)
        assert indices.min() >= 0 and indices.max() <= T - 1


def test_duplicate_repeats_one_frame_one_to_three_times_and_drops_as_many():
    seen_extra = set()
    for seed in range(60):
        indices = perturbation_indices(T, "duplicate", seed).tolist()
        counts = collections.Counter(indices)
        repeated = [frame for frame, n in counts.items() if n > 1]
        assert len(repeated) <= 1
        extra = len(indices) - len(counts)  # copies beyond the first == frames dropped, T is kept
        # k copies are inserted (1..3); when the duplicated frame's own original is among the k dropped,
        # one copy fewer remains (official quirk: with k = 1 the frame is merely moved).
        assert 0 <= extra <= 3
        moved = repeated[0] if repeated else None
        survivors = [i for i in indices if i != moved]
        if moved is not None:
            assert survivors == sorted(survivors)
        seen_extra.add(extra)
    assert {1, 2, 3} <= seen_extra


def test_blackout_blacks_one_to_three_frames_in_place():
    frames = labelled_frames()
    for seed in range(30):
        out, indices = perturb(frames, "blackout", seed)
        black = indices == BLACK
        assert 1 <= black.sum() <= 3
        assert np.all(out[black] == 0)
        assert np.array_equal(indices[~black], np.arange(T)[~black])


def test_short_clips_do_not_fail():
    for mode in TemporalPerturbation:
        for count in (1, 2, 3):
            out, _ = perturb(labelled_frames(count), mode, 0)
            assert len(out) == count


def test_draw_perturbation_covers_all_modes_and_is_seeded():
    assert {draw_perturbation(seed) for seed in range(100)} == set(TemporalPerturbation)
    assert draw_perturbation(5) == draw_perturbation(5)


def test_apply_indices_matches_perturb():
    frames = labelled_frames()
    out, indices = perturb(frames, "duplicate", 2)
    assert np.array_equal(apply_indices(frames, indices), out)
