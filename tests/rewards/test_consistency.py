"""Q-Ponder rule-based consistency: the level the reasoning concludes vs the band of the score."""

import numpy as np
import pytest

from rewards.consistency import (
    BAD,
    EXCELLENT,
    FAIR,
    GOOD,
    POOR,
    rule_based_consistency,
    score_band,
    stated_level,
)


@pytest.mark.parametrize(
    "reasoning, level",
    [
        ("Overall the quality is excellent.", EXCELLENT),
        ("Sharp edges, good colour.", GOOD),
        ("It is not good.", FAIR),
        ("It isn't very good.", FAIR),  # one word between negator and level
        ("Not bad at all.", FAIR),
        ("Not excellent, but fine.", GOOD),
        ("It is a low-quality clip", POOR),
        ("Very poor lighting throughout", BAD),
        ("Good start, but overall poor.", POOR),  # the last mention concludes
        ("no noise, good detail", GOOD),  # "noise," ends the negation window
        ("Nothing about levels here", None),
        ("It is not fair to say", None),  # a negated "fair" states nothing
    ],
)
def test_stated_level(reasoning, level):
    assert stated_level(reasoning) == level


@pytest.mark.parametrize(
    "score, band",
    [
        (5.0, EXCELLENT),
        (4.2, EXCELLENT),
        (4.19, GOOD),
        (3.4, GOOD),
        (2.6, FAIR),
        (1.8, POOR),
        (1.0, BAD),
        (0.9, None),
        (5.01, None),
        (np.nan, None),
    ],
)
def test_score_band(score, band):
    assert score_band(score) == band


def test_consistency_rewards():
    responses = [
        "<think>excellent sharpness</think><answer>4.5</answer>",  # same band: 1
        "<think>good overall</think><answer>4.5</answer>",  # adjacent: 0.5
        "<think>poor overall</think><answer>4.5</answer>",  # far: 0
        "<think>nothing stated</think><answer>4.5</answer>",  # no level: 0
        "<think>good</think><answer>n/a</answer>",  # unparsed score: 0
        "fair quality <answer>3.0</answer>",  # no think block: the text before the answer
    ]
    pred = np.array([4.5, 4.5, 4.5, 4.5, np.nan, 3.0])
    assert rule_based_consistency(responses, pred).tolist() == [1.0, 0.5, 0.0, 0.0, 0.0, 1.0]
