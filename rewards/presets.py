"""Named presets: each paper's reward as a short composition of components (docs/rewards.md).

A component is computed at one of three levels, which is what lets reward workers shard the batch:
- "response": fn(responses, parsed, mos) -> (N,), needs nothing but its own responses;
- "group": fn(Groups) -> (B, G), needs the gathered (sub-)batch (ranks, group statistics); runs in the
  preset's order, so a composite (PreResQ accuracy) reads the terms computed before it;
- "variants": fn(original Groups, perturbed Groups) -> (B, G) for the originals (the temporal bonus).
A preset's weights give the total; weight 0 marks a sub-term that is reported but not summed.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from rewards.consistency import rule_based_consistency
from rewards.format import PRERESQ_IQA_TEMPLATE, PRERESQ_VQA_TEMPLATE, R1_TEMPLATE, template_format
from rewards.parsing import ParsedResponses, parse_aspect_ratings, parse_json_ratings, parse_r1_scores
from rewards.preresq import (
    aspect_std_penalty,
    group_rank,
    pairwise_score_rank,
    preresq_accuracy,
    triplet_balance,
    triplet_ranking,
)
from rewards.ranking import thurstone_fidelity_rank
from rewards.regression import gaussian_regression, threshold_accuracy
from rewards.temporal import TEMPORAL_BONUS, temporal_bonus
from rollout.prompts import (
    PRERESQ_ASPECTS,
    PRERESQ_IQA_QUESTION,
    PRERESQ_VQA_QUESTION,
    Q_INSIGHT_QUESTION,
    QUALITY_QUESTION,
    SHORT_QUESTION,
)

RANK_MAX = 1.0011  # sqrt(1 + 1e-6) + sqrt(1e-6), plus float32 rounding


@dataclass(frozen=True)
class Component:
    name: str
    compute: Callable
    level: str  # "response" | "group" | "variants"
    bounds: tuple[float, float]  # every value lies in [low, high]


@dataclass(frozen=True)
class Preset:
    """Everything that depends on which paper's answer form a run uses: the question that asks for it, the
    parser that reads it, the names of its aspect ratings and the reward components. Resolved once from
    `reward.preset` and passed around; the score of a group of answers is `ParsedResponses.group_scores`,
    one rule for every preset's parse."""

    name: str
    description: str  # the paper, its source commit and the quirks reproduced
    parse: Callable[[list[str]], ParsedResponses]
    components: tuple[Component, ...]
    weights: Mapping[str, float]
    questions: Mapping[str, str]  # "image" | "video" -> the question whose answer `parse` reads
    # `prompt_style: short` (the tiny CPU demo); None: the answer form needs the full question
    short_questions: Mapping[str, str] | None = None
    aspects: tuple[str, ...] = ()  # names of the ratings `parse` returns as aspects, in answer order

    @property
    def component_names(self) -> list[str]:
        return [c.name for c in self.components]

    def question(self, media_type: str, prompt_style: str = "paper") -> str:
        """`media_type` is the item's: a video shown as pictures (PreResQ-R1's multi-frame view) is a video."""
        table = self.short_questions if prompt_style == "short" and self.short_questions else self.questions
        return table["video" if media_type == "video" else "image"]


def _per_response(name: str, fn: Callable, bounds: tuple[float, float]) -> Component:
    return Component(name, fn, "response", bounds)


def _template(template) -> Callable:
    return lambda responses, parsed, mos: template_format(responses, template)


def _regression(responses, parsed, mos, coarse_factor=None):
    return gaussian_regression(parsed.pred, mos, sigma=0.5, coarse_factor=coarse_factor)


def _threshold(responses, parsed, mos):
    return threshold_accuracy(parsed.pred, mos)


def _std_penalty(responses, parsed, mos):
    return aspect_std_penalty(parsed.aspects)


def _consistency(responses, parsed, mos):
    return rule_based_consistency(responses, parsed.pred)


R1_FORMAT = _per_response("format", _template(R1_TEMPLATE), (0.0, 1.0))
FIDELITY_RANK = Component("rank", thurstone_fidelity_rank, "group", (0.0, RANK_MAX))
TEMPORAL = Component("temporal", temporal_bonus, "variants", (0.0, 2 * TEMPORAL_BONUS))
CONSISTENCY = _per_response("consistency", _consistency, (0.0, 1.0))

PRESETS: dict[str, Preset] = {}
DEFAULT_PRESET = "qthink"


def _preset(builder: Callable[[], dict]) -> Callable:
    """Register a preset: the builder returns Preset's fields after `description`, its docstring is that."""
    name = builder.__name__.replace("_", "-")
    PRESETS[name] = Preset(name, inspect.cleandoc(builder.__doc__), **builder())
    return builder


def _r1(components: tuple[Component, ...]) -> dict:
    """A preset answering one score in R1 tags (the VisualQuality-R1 question, or the demo's short one)."""
    return dict(parse=parse_r1_scores, components=components, weights=_equal_weights(components),
                questions=QUALITY_QUESTION, short_questions=SHORT_QUESTION)


def _equal_weights(components: tuple[Component, ...]) -> dict[str, float]:
    return {c.name: 1.0 for c in components}


@_preset
def vqathinker():
    """VQAThinker (clh124/VQAThinker@ee47a40): format + bell-shaped regression + fidelity rank + temporal
    bonus, equal weights. Quirks: the first number of the LAST answer block ("3.47/5" -> 3.47; no tags: the
    response's first number); regression x 0.8 when the parsed float's repr has < 2 decimals ("3.10" is
    coarse); the temporal bonus is decided once per batch. Deviation: an unparsed answer scores 0 (official:
    a random integer 1-5)."""
    regression = _per_response("regression", partial(_regression, coarse_factor=0.8), (0.0, 1.0))
    components = (R1_FORMAT, regression, FIDELITY_RANK, TEMPORAL)
    return _r1(components)


@_preset
def visualquality_r1():
    """VisualQuality-R1 (TianheWu/VisualQuality-R1@a16dcdb): format + Thurstone fidelity rank against the
    other prompts' group means. Deviations: one prompt -> 0 (official: division by zero); ranking over the
    whole batch unless `scope` slices it like the official per-GPU batch."""
    components = (R1_FORMAT, FIDELITY_RANK)
    return _r1(components)


@_preset
def q_insight():
    """Q-Insight (bytedance/Q-Insight@08308fd): 1 iff the first answer's JSON "rating" is within 0.35 of
    the MOS (strict, in double: 3.35 vs 3.0 scores 0); quoted, negative or "3.47.5" ratings score 0."""
    components = (_per_response("accuracy", _threshold, (0.0, 1.0)),)
    return dict(parse=parse_json_ratings, components=components, weights=_equal_weights(components),
                questions=Q_INSIGHT_QUESTION)


def _preresq(aspects: tuple[str, ...], question: str, template, with_group_rank: bool) -> dict:
    n_aspects = len(aspects)
    accuracy = partial(preresq_accuracy, with_group_rank=with_group_rank)
    components = (
        _per_response("format", _template(template), (0.0, 1.0)),
        _per_response("std_penalty", _std_penalty, (0.0, 0.25)),
        Component("pair", pairwise_score_rank, "group", (0.0, 1.0)),
        Component("balance", partial(triplet_balance, n_dims=min(n_aspects, 4)), "group", (0.0, 0.5)),
        Component("triplet", triplet_ranking, "group", (0.0, 1.0)),
        *((Component("group_rank", group_rank, "group", (0.0, 1.0)),) if with_group_rank else ()),
        Component("accuracy", accuracy, "group", (-0.25 / 3, 1.75 / 3) if with_group_rank else (-0.25, 0.75)),
    )
    weights = {c.name: 1.0 if c.name in ("format", "accuracy") else 0.0 for c in components}
    return dict(parse=partial(parse_aspect_ratings, n_aspects=n_aspects), components=components, weights=weights,
                questions={"image": question, "video": question}, aspects=aspects)


@_preset
def preresq_iqa():
    """PreResQ-R1 IQA (DanceSkyCode/General-Visual-Quality-RL@fc5b685, grpo_preres_IQA_r1.py): format +
    (0.375 pair - std_penalty + 0.5 balance + 0.125 triplet + group_rank) / 3; the sub-terms are reported
    with weight 0. Quirks: numbers from the WHOLE response, the last 5 ("-2" -> 2, "1080p" -> 1080);
    balance halved twice; equal-MOS pairs score 1 when the predictions differ; G < 3 -> accuracy 0; the
    training rule (mean of the last 5) also at inference, where their inference script reads the first
    number. Deviations: triplet 0 for B <= 2 (official NaN); pair s = 0 on 0/0 (official NaN)."""
    return _preresq(PRERESQ_ASPECTS, PRERESQ_IQA_QUESTION, PRERESQ_IQA_TEMPLATE, with_group_rank=True)


@_preset
def preresq_vqa():
    """PreResQ-R1 VQA (grpo_preres_VQA_r1.py): as preresq-iqa with the last 2 numbers, balance over both
    dims, no group_rank and no division by 3 (accuracy can be negative); the format needs a newline after
    BOTH numbers."""
    return _preresq(("spatial", "temporal"), PRERESQ_VQA_QUESTION, PRERESQ_VQA_TEMPLATE, with_group_rank=False)


@_preset
def q_ponder():
    """Q-Ponder (arXiv 2506.05384; code not public, the formula is qthink's): format + Gaussian accuracy
    (sigma 0.5, no decimal penalty) + rule-based reasoning/score consistency."""
    components = (R1_FORMAT, _per_response("accuracy", _regression, (0.0, 1.0)), CONSISTENCY)
    return _r1(components)


@_preset
def qthink():
    """qthink default: format + Gaussian regression (sigma 0.5, no decimal penalty) + fidelity rank over
    the global batch + rule-based consistency + VQAThinker's temporal bonus when perturbed rollouts are
    present."""
    regression = _per_response("regression", _regression, (0.0, 1.0))
    components = (R1_FORMAT, regression, FIDELITY_RANK, CONSISTENCY, TEMPORAL)
    return _r1(components)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown reward preset {name!r}; known: {', '.join(PRESETS)}") from None
