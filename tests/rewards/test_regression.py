"""Gaussian regression (VQAThinker bell-shaped reward) and Q-Insight's threshold accuracy."""

import math

import numpy as np
import pytest

from rewards.regression import gaussian_regression, has_coarse_decimals, threshold_accuracy


def test_gaussian_regression_by_hand():
    # p = 3.47, y = 3.5: exp(-(0.03)^2 / (2 * 0.25)) = exp(-0.0018) = 0.99820162
    reward = gaussian_regression(np.array([3.47, 4.5, np.nan]), np.array([3.5, 3.5, 3.5]))
    assert reward[0] == pytest.approx(math.exp(-0.0018), abs=1e-7)
    assert reward[1] == pytest.approx(math.exp(-2.0), abs=1e-7)  # one point off: exp(-1 / 0.5)
    assert reward[2] == 0.0  # unparsed


def test_regression_is_float32_of_a_double_exponent():
    reward = gaussian_regression(np.array([3.47]), np.array([3.5]))
    assert reward[0] == float(np.exp(np.float32(-(abs(3.47 - 3.5) ** 2) / 0.5)))


@pytest.mark.parametrize(
    "value, coarse", [(3.1, True), (3.0, True), (4.10, True), (3.456, False), (3.45, False), (1e-7, True)]
)
def test_coarse_decimals(value, coarse):
    # str(p) with trailing zeros dropped: "3.1" -> 1 decimal, "3.0" -> 0, "1e-07" has no '.' -> 0
    assert has_coarse_decimals(value) is coarse


def test_coarse_answers_lose_a_fifth():
    # "3.10" parses to 3.1 (coarse): 0.8 * exp(-2 * 0.4^2); 3.45 has two decimals: no factor
    reward = gaussian_regression(np.array([3.1, 3.45]), np.array([3.5, 3.5]), coarse_factor=0.8)
    assert reward[0] == pytest.approx(0.8 * math.exp(-2 * 0.16), abs=1e-7)
    assert reward[1] == pytest.approx(math.exp(-2 * 0.05**2), abs=1e-7)


def test_absurd_prediction_scores_zero():
    assert gaussian_regression(np.array([1e30]), np.array([3.0]))[0] == 0.0


def test_threshold_is_strict_in_double():
    # 3.35 - 3.0 = 0.35000000000000009 in double: not < 0.35
    reward = threshold_accuracy(np.array([3.35, 3.34, 2.66, np.nan]), np.array([3.0, 3.0, 3.0, 3.0]))
    assert reward.tolist() == [0.0, 1.0, 1.0, 0.0]
