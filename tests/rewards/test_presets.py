"""Presets expose their components and default weights; the total is the weighted sum."""

import numpy as np
import pytest

from rewards import DEFAULT_PRESET, PRESETS, get_preset, score_batch

EXPECTED_WEIGHTS = {
    "vqathinker": {"format": 1, "regression": 1, "rank": 1, "temporal": 1},
    "visualquality-r1": {"format": 1, "rank": 1},
    "q-insight": {"accuracy": 1},
    "preresq-iqa": {
        "format": 1,
        "std_penalty": 0,
        "pair": 0,
        "balance": 0,
        "triplet": 0,
        "group_rank": 0,
        "accuracy": 1,
    },
    "preresq-vqa": {"format": 1, "std_penalty": 0, "pair": 0, "balance": 0, "triplet": 0, "accuracy": 1},
    "q-ponder": {"format": 1, "accuracy": 1, "consistency": 1},
    "qthink": {"format": 1, "regression": 1, "rank": 1, "consistency": 1, "temporal": 1},
}
RESPONSES = [
    "<think>good</think><answer>3.9</answer>",
    "<think>poor</think><answer>2.05</answer>",
    "4",
    "x",
] * 3
MOS = [4.0] * 4 + [2.0] * 4 + [3.0] * 4
IDS = [0] * 4 + [1] * 4 + [2] * 4


def test_preset_table():
    assert DEFAULT_PRESET == "qthink"
    assert {name: dict(p.weights) for name, p in PRESETS.items()} == EXPECTED_WEIGHTS
    for preset in PRESETS.values():
        assert preset.component_names == list(preset.weights) and preset.description


@pytest.mark.parametrize("preset", list(PRESETS))
def test_total_is_weighted_sum(preset):
    result = score_batch(PRESETS[preset], RESPONSES, MOS, IDS)
    assert list(result.components) == get_preset(preset).component_names
    expected = sum(w * result.components[name] for name, w in EXPECTED_WEIGHTS[preset].items())
    np.testing.assert_allclose(result.total, expected, atol=1e-12)


def test_custom_weights_recombine_sub_terms():
    result = score_batch(PRESETS["preresq-iqa"], RESPONSES, MOS, IDS, weights={"accuracy": 0, "pair": 2.0})
    np.testing.assert_allclose(result.total, result.components["format"] + 2 * result.components["pair"])


def test_unknown_component_or_preset_is_an_error():
    with pytest.raises(ValueError, match="no component 'speed'"):
        score_batch(PRESETS["qthink"], RESPONSES, MOS, IDS, weights={"speed": 1})
    with pytest.raises(ValueError, match="unknown reward preset"):
        get_preset("nope")


def test_parse_failures_are_counted():
    # "x" fails everywhere; "4" parses for R1 presets; q-insight needs a JSON rating in an answer block
    assert score_batch(PRESETS["qthink"], RESPONSES, MOS, IDS).parse_failures == 3
    assert score_batch(PRESETS["q-insight"], RESPONSES, MOS, IDS).parse_failures == 12
    assert score_batch(PRESETS["preresq-iqa"], RESPONSES, MOS, IDS).parse_failures == 3


def test_each_preset_asks_for_the_answer_its_parser_reads():
    iqa, vqa, insight, r1 = (PRESETS[n] for n in ("preresq-iqa", "preresq-vqa", "q-insight", "qthink"))
    assert all(aspect in iqa.question("image") for aspect in iqa.aspects) and len(iqa.aspects) == 5
    assert vqa.aspects == ("spatial", "temporal") and "two ratings" in vqa.question("video")
    assert '"rating"' in insight.question("image") and "this video" in insight.question("video")
    assert "this video" in r1.question("video") and "this picture" in r1.question("image")
    # the demo's one-line question only where the answer form is one score; aspect lists keep their question
    assert len(r1.question("image", "short")) < 120
    assert iqa.question("image", "short") == iqa.question("image")
