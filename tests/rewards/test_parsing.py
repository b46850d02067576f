"""Each paper's parsing rule, quirks included."""

import numpy as np
import pytest

from rewards.parsing import MAX_ABS_SCORE, parse_aspect_ratings, parse_json_ratings, parse_r1_scores


def r1(text):
    return parse_r1_scores([text]).pred[0]


@pytest.mark.parametrize(
    "response, expected",
    [
        ("<think>t</think><answer>3.47/5</answer>", 3.47),
        ("<think>t</think><answer>4.</answer>", 4.0),  # "4." matches "4" (the decimals need a digit)
        ("<think>t</think><answer> -1.25 </answer>", -1.25),
        ("<answer>2.0</answer> text <answer>score 3.5 of 5</answer>", 3.5),  # the LAST answer block
        ("<answer>\n4.2\n</answer>", 4.2),  # dot matches newline
        ("Across the 16 frames, quality 3.9", 16.0),  # no tags: first number of the whole response
        ("<think>1</think><answer>1e309</answer>", 1.0),  # no exponent in the pattern: "1"
    ],
)
def test_r1_quirks(response, expected):
    assert r1(response) == expected


@pytest.mark.parametrize(
    "response", ["", "<answer>none</answer>", "<answer>" + "9" * 10000 + "</answer>", "no digits"]
)
def test_r1_failures_are_nan_and_counted(response):
    parsed = parse_r1_scores([response])
    assert np.isnan(parsed.pred[0]) and parsed.failed[0]


def test_numbers_beyond_max_abs_score_fail():
    assert r1("<answer>" + "1" + "0" * 30 + "</answer>") == 1e30  # exactly at the bound parses
    assert np.isnan(r1("<answer>" + "1" + "0" * 31 + "</answer>"))


@pytest.mark.parametrize(
    "response, expected",
    [
        ('<answer>{"rating": 3.47}</answer>', 3.47),
        ('<answer>{"rating":4}</answer><answer>{"rating": 1}</answer>', 4.0),  # the FIRST answer block
        ('<answer>{"rating": "3.47"}</answer>', np.nan),  # quoted
        ("<answer>3.47</answer>", np.nan),  # bare number, no key
        ('<answer>{"rating": -3}</answer>', np.nan),  # no sign in [\d\.]+
        ('{"rating": 3.47}', np.nan),  # no answer tag
        ('<answer>{"rating": 3.47.5}</answer>', np.nan),  # float() fails
    ],
)
def test_json_rating(response, expected):
    np.testing.assert_equal(parse_json_ratings([response]).pred[0], expected)


@pytest.mark.parametrize(
    "response, aspects",
    [
        ("<think>1080p</think><answer>2\n3\n4\n5\n-2</answer>", [2, 3, 4, 5, 2]),  # "-2" -> 2
        ("a .5 b -2.5 c +1.5", [0.5, -2.5, 1.5, 0.5, 0.5]),  # padded with the FIRST number
        ("<think>at 1080p</think><answer>3.1</answer>", [1080, 3.1, 1080, 1080, 1080]),
        ("1 2 3 4 5 6 7", [3, 4, 5, 6, 7]),  # the LAST five, think text and all
        ("<answer>4.5</answer> trailing 2", [4.5, 2, 4.5, 4.5, 4.5]),  # text after </answer> counts
    ],
)
def test_preresq_numbers(response, aspects):
    parsed = parse_aspect_ratings([response], 5)
    assert parsed.aspects[0].tolist() == aspects and not parsed.failed[0]


def test_preresq_no_number_is_three_and_counted():
    parsed = parse_aspect_ratings(["no digits at all"], 5)
    assert parsed.aspects[0].tolist() == [3.0] * 5 and parsed.pred[0] == 3.0 and parsed.failed[0]


def test_preresq_huge_used_number_fails_to_the_no_number_value():
    parsed = parse_aspect_ratings(["1 2 3 " + "9" * 400], 5)
    assert parse_aspect_ratings(["9" * 400 + " 1 2 3 4 5"], 5).aspects[0].tolist() == [
        1,
        2,
        3,
        4,
        5,
    ]  # unused
    assert parsed.aspects[0].tolist() == [3.0] * 5 and parsed.failed[0]


def test_preresq_prediction_is_float32_mean_in_torch_order():
    parsed = parse_aspect_ratings(["3.1 3.2 3.3 3.4 3.6"], 5)
    a = np.array([3.1, 3.2, 3.3, 3.4, 3.6], dtype=np.float32)
    expected = np.float32(np.float32(np.float32(np.float32(a[0] + a[4]) + a[1]) + a[2]) + a[3]) / np.float32(
        5
    )
    assert parsed.pred[0] == float(expected)


def test_preresq_vqa_two_numbers_pad_with_itself():
    assert parse_aspect_ratings(["score 3.7"], 2).aspects[0].tolist() == [3.7, 3.7]
    assert parse_aspect_ratings(["1 2 3.5 4.25"], 2).aspects[0].tolist() == [3.5, 4.25]


def test_max_abs_score_is_within_float32_sums():
    assert MAX_ABS_SCORE * 4096 < np.finfo(np.float32).max


def test_group_score_is_the_mean_of_the_parsed_answers_clipped_to_the_scale_or_the_middle_when_none_parsed():
    from rewards.parsing import ParsedResponses

    nan = float("nan")
    parsed = ParsedResponses(pred=np.array([2.0, 1080.0, nan, nan, nan, 4.5]), aspects=np.zeros((6, 0)),
                             failed=np.array([False, False, True, True, True, False]))
    # (2 + 5) / 2; nothing parsed: 3.0; 4.5 alone
    np.testing.assert_allclose(parsed.group_scores(2), [3.5, 3.0, 4.5])
