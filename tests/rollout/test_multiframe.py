"""PreResQ-R1's global composite (frames tiled row-major) plus K local frames."""

import numpy as np

from rollout.multiframe import multiframe_view


def labelled_frames(count=12, height=8, width=10) -> np.ndarray:
    return np.stack([np.full((height, width, 3), i * 10, dtype=np.uint8) for i in range(count)])


def test_composite_tiles_uniform_frames_row_major():
    view = multiframe_view(labelled_frames(), rows=2, cols=3, num_local=3)
    assert view.composite.shape == (16, 30, 3)
    assert view.composite_indices == [0, 2, 4, 7, 9, 11]
    for slot, index in enumerate(view.composite_indices):
        row, col = divmod(slot, 3)
        tile = view.composite[row * 8:(row + 1) * 8, col * 10:(col + 1) * 10]
        assert np.all(tile == index * 10)


def test_local_frames_are_segment_centres_at_full_resolution():
    frames = labelled_frames()
    view = multiframe_view(frames, rows=2, cols=2, num_local=3)
    assert view.local_indices == [2, 6, 10]
    assert view.local_frames.shape == (3, 8, 10, 3)
    assert np.array_equal(view.local_frames, frames[[2, 6, 10]])


def test_tiles_shrink_to_max_side_keeping_aspect():
    view = multiframe_view(labelled_frames(height=40, width=60), rows=2, cols=2, tile_max_side=30)
    assert view.composite.shape == (40, 60, 3)


def test_short_video_repeats_frames():
    view = multiframe_view(labelled_frames(count=2), rows=2, cols=2, num_local=3)
    assert view.composite_indices == [0, 0, 1, 1] and len(view.local_frames) == 3
