"""The reward role's settings (the `reward:` section of qthink's config tree, composed by cluster/config.py)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from rewards.presets import DEFAULT_PRESET


@dataclass
class RewardConfig:
    """Which paper's reward, how it is weighted and ranked, and the reward workers that compute it."""

    preset: str = DEFAULT_PRESET  # a name in rewards.presets.PRESETS (checked at load)
    weights: dict[str, float] = field(default_factory=dict)  # per-component overrides of the preset
    custom: list[str] = field(default_factory=list)  # extra components as "module:function"
    # global: rank over the whole batch; slice: inside rank_slice prompts, as the papers' per-GPU batches do
    rank_scope: typing.Literal["global", "slice"] = "global"
    rank_slice: int = 8
    temporal: bool = True  # VQAThinker's perturbed-video bonus when the batch has videos
    num_workers: int = 1
    call_timeout_s: float = 300.0  # a reward call that has not returned by then: its worker is replaced
    max_restarts: int = 3
