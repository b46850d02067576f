"""Custom components from `module:function`, given a weight, reported under their name."""

import pytest

from rewards import PRESETS, score_batch

PLUGIN = """
import numpy as np

def length_bonus(responses, mos, prompt_ids, group_size, **kw):
    return np.array([min(len(r), 10) / 10 for r in responses])

def broken(responses, mos, prompt_ids, group_size, **kw):
    return np.full(len(responses), np.nan)
"""


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards"


def test_plugin_component_is_weighted_into_total(plugin_module):
    responses = ["<think>a</think><answer>3.5</answer>", "12345"]
    result = score_batch(
        PRESETS["q-insight"], responses, [3.0, 3.0], [0, 0], weights={f"{plugin_module}:length_bonus": 0.5}
    )
    assert result.components[f"{plugin_module}:length_bonus"].tolist() == [1.0, 0.5]
    assert result.total.tolist() == [0.5, 0.25]  # q-insight accuracy is 0 for both (no JSON rating)


def test_broken_plugin_is_loud(plugin_module):
    with pytest.raises(ValueError, match="non-finite"):
        score_batch(PRESETS["qthink"], ["a"], [3.0], [0], weights={f"{plugin_module}:broken": 1})
    with pytest.raises(ValueError, match="not a function"):
        score_batch(PRESETS["qthink"], ["a"], [3.0], [0], weights={f"{plugin_module}:missing": 1})
