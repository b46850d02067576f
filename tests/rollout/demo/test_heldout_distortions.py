"""The held-out generator: each type worsens with severity and is not the training generator's output."""

import numpy as np
import pytest

from rollout.demo.content import load_source
from rollout.demo.distortions import SEVERITIES, distort_image
from rollout.demo.heldout_distortions import HELDOUT_DISTORTIONS, block_dct_jpeg, distort_heldout, heldout_mos
from rollout.demo.synthetic import random_crop

ORIGINAL = random_crop(load_source("grace_hopper"), 112, np.random.default_rng(0))


@pytest.mark.parametrize("distortion", HELDOUT_DISTORTIONS)
def test_severity_moves_the_image_further_from_the_original_and_lowers_the_mos(distortion):
    errors = [np.abs(distort_heldout(ORIGINAL, distortion, s, np.random.default_rng(0)).astype(float) - ORIGINAL).mean()
              for s in SEVERITIES]
    assert errors == sorted(errors) and errors[0] > 0
    mos = [heldout_mos(distortion, s) for s in SEVERITIES]
    assert mos == sorted(mos, reverse=True) and 1 <= mos[-1] < mos[0] <= 5


@pytest.mark.parametrize("distortion", HELDOUT_DISTORTIONS)
def test_no_level_reproduces_a_training_generator_level(distortion):
    trained = [distort_image(ORIGINAL, distortion, s, np.random.default_rng(1)).astype(float) for s in SEVERITIES]
    for s in SEVERITIES:
        heldout = distort_heldout(ORIGINAL, distortion, s, np.random.default_rng(1)).astype(float)
        assert min(np.abs(heldout - t).mean() for t in trained) > 0.3


def test_block_dct_jpeg_is_near_lossless_at_high_quality_and_blocky_at_low():
    def luma(image):  # 4:2:0 chroma loses colour detail at any quality; luminance alone is near lossless
        return image.astype(float) @ np.array([0.299, 0.587, 0.114])

    assert np.abs(luma(block_dct_jpeg(ORIGINAL, 98)) - luma(ORIGINAL)).mean() < 1.0
    coarse = block_dct_jpeg(ORIGINAL, 4).astype(float).mean(-1)
    step = np.abs(np.diff(coarse, axis=1))  # jumps between columns: largest across 8-px block edges
    assert step[:, 7::8].mean() > 1.5 * np.delete(step, np.s_[7::8], axis=1).mean()
