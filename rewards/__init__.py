"""Rewards for visual-quality GRPO: answer parsing, every paper's reward as a named preset, composition.

Pure logic (numpy/scipy, no Ray). The formulas follow the papers' official code, quirks included; see
docs/rewards.md and each preset's `description`.

    from rewards import score_batch
    result = score_batch("qthink", responses, mos, prompt_ids)   # G consecutive responses per prompt
    result.total, result.components["rank"], result.parse_failures
"""

from rewards.compose import BatchRewards, ResponseScores, score_batch, score_gathered, score_responses
from rewards.jsonl_batch import score_jsonl
from rewards.plugins import load_component
from rewards.presets import DEFAULT_PRESET, PRESETS, Component, Preset, get_preset

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "BatchRewards",
    "Component",
    "Preset",
    "ResponseScores",
    "get_preset",
    "load_component",
    "score_batch",
    "score_gathered",
    "score_jsonl",
    "score_responses",
]
