"""SRCC/KRCC/PLCC/RMSE agree with scipy; the logistic fit helps on non-linear data and falls back openly."""

import numpy as np
import pytest
from scipy import stats

from rewards.metrics import plcc_logistic, pristine_above_worst, quality_metrics, srcc_gain_ci


def test_metrics_equal_scipy_on_random_data():
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, 200)
    pred = mos + rng.normal(0, 0.8, 200)
    overall = quality_metrics(pred, mos)["overall"]
    assert overall["srcc"] == pytest.approx(stats.spearmanr(pred, mos)[0], abs=1e-12)
    assert overall["krcc"] == pytest.approx(stats.kendalltau(pred, mos)[0], abs=1e-12)
    assert overall["plcc"] == pytest.approx(stats.pearsonr(pred, mos)[0], abs=1e-12)
    assert overall["rmse"] == pytest.approx(np.sqrt(np.mean((pred - mos) ** 2)))
    assert overall["n"] == 200 and overall["n_invalid"] == 0


def test_logistic_plcc_beats_raw_on_monotone_nonlinear_data():
    rng = np.random.default_rng(1)
    pred = rng.uniform(-4, 4, 300)
    mos = 1 + 4 / (1 + np.exp(-2 * pred)) + rng.normal(0, 0.05, 300)
    overall = quality_metrics(pred, mos)["overall"]
    assert overall["plcc_logistic_fitted"] is True
    assert overall["plcc_logistic"] >= overall["plcc"]
    assert overall["plcc_logistic"] > 0.99 > overall["plcc"]


def test_failed_or_impossible_fit_falls_back_to_raw_and_says_so():
    value, fitted = plcc_logistic([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])  # too few points to fit 5 parameters
    assert fitted is False and value == pytest.approx(stats.pearsonr([1, 2, 3], [1, 3, 2])[0])


def test_per_group_and_overall():
    rng = np.random.default_rng(2)
    mos = rng.uniform(1, 5, 60)
    pred = mos + rng.normal(0, 0.3, 60)
    groups = np.array(["koniq"] * 30 + ["kadid"] * 30)
    result = quality_metrics(pred, mos, groups)
    assert set(result["groups"]) == {"koniq", "kadid"}
    assert result["groups"]["kadid"]["srcc"] == pytest.approx(stats.spearmanr(pred[30:], mos[30:])[0])
    assert result["groups"]["koniq"]["n"] == 30


def test_degenerate_inputs_stay_finite():
    constant = quality_metrics([3.0] * 10, np.linspace(1, 5, 10))["overall"]
    assert constant["srcc"] == 0.0 and constant["plcc"] == 0.0 and constant["plcc_logistic_fitted"] is False
    with_nan = quality_metrics([1.0, np.nan, 3.0, np.inf, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0])["overall"]
    assert with_nan["n"] == 3 and with_nan["n_invalid"] == 2 and with_nan["srcc"] == pytest.approx(1.0)
    empty = quality_metrics([], [])["overall"]
    assert empty["n"] == 0 and empty["rmse"] == 0.0
    with pytest.raises(ValueError):
        quality_metrics([1.0, 2.0], [1.0])


def test_pristine_ordering_counts_pairs_of_one_source_only_with_ties_half():
    pred = [4.0, 2.0, 4.5, 3.0, 3.0, 1.0]
    severity = [0, 5, 5, 0, 5, 5]
    source = ["a", "a", "a", "b", "b", "c"]  # c has no pristine item: no pairs
    result = pristine_above_worst(pred, severity, source)
    assert result == {"fraction": (1 + 0 + 0.5) / 3, "pairs": 3}
    assert pristine_above_worst([1.0, 2.0], [1, 5], ["a", "a"]) is None


def test_srcc_gain_interval_is_paired_and_brackets_the_gain():
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, 300)
    before = mos + rng.normal(0, 2.0, 300)
    after = mos + rng.normal(0, 0.5, 300)
    gain = srcc_gain_ci(before, after, mos, resamples=500)
    assert gain["low"] < gain["gain"] < gain["high"] and gain["low"] > 0 and gain["n"] == 300
    same = srcc_gain_ci(before, before, mos, resamples=100)
    assert same["gain"] == same["low"] == same["high"] == 0.0
    with_failure = srcc_gain_ci(np.r_[before[:-1], np.nan], after, mos, resamples=50)
    assert with_failure["n"] == 299
