"""The demo's pictures: every bundled one loads offline, procedural scenes are seeded, all are distinct."""

import numpy as np
import pytest

from rollout.demo.content import PICTURES, PROCEDURAL, SOURCES, load_source, procedural_scene


def test_every_source_loads_as_rgb_at_least_256_px():
    assert len(PICTURES) >= 25 and len(SOURCES) == len(set(SOURCES))
    for name in SOURCES:
        picture = load_source(name)
        assert picture.ndim == 3 and picture.shape[2] == 3 and picture.dtype == np.uint8
        assert min(picture.shape[:2]) >= 256 and picture.std() > 5, name  # not blank


def test_no_two_sources_are_the_same_picture():
    thumbs = {name: np.asarray(load_source(name)[:256, :256], float).mean(-1)[::16, ::16].ravel() for name in SOURCES}
    names = list(thumbs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(thumbs[a] - thumbs[b]).mean() > 2, (a, b)


def test_procedural_scenes_are_fixed_by_their_index():
    assert np.array_equal(procedural_scene(3), procedural_scene(3))
    assert not np.array_equal(procedural_scene(3), procedural_scene(4))
    assert np.array_equal(load_source(PROCEDURAL[3]), procedural_scene(3))


def test_an_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown demo picture 'lena'"):
        load_source("lena")
