"""Scoring a batch: per-response work (shardable), then the cross-response components, then the total.

    score_batch = score_gathered(score_responses(...))

Reward workers run `score_responses` on shards; `ResponseScores.concat` gathers them in batch order, and
`score_gathered` computes the group components on the whole batch, so the result does not depend on the
number of workers. The batch layout: G consecutive responses per (prompt_id, variant). Each variant
("original", "perturbed") is its own batch for the group components (perturbed rank compares perturbed
rollouts only), optionally cut into `scope`-prompt slices to reproduce the papers' per-GPU batches.
"""

from dataclasses import dataclass

import numpy as np

from rewards.groups import Groups
from rewards.parsing import ParsedResponses
from rewards.plugins import custom_component_values, is_plugin_name
from rewards.presets import Preset

VARIANTS = ("original", "perturbed")


@dataclass(frozen=True)
class ResponseScores:
    """What a reward worker returns for its shard: the parse and the per-response components."""

    parsed: ParsedResponses
    values: dict[str, np.ndarray]

    @classmethod
    def concat(cls, parts: list["ResponseScores"]) -> "ResponseScores":
        return cls(
            ParsedResponses.concat([p.parsed for p in parts]),
            {name: np.concatenate([p.values[name] for p in parts]) for name in parts[0].values},
        )


@dataclass(frozen=True)
class BatchRewards:
    components: dict[str, np.ndarray]  # float64 (N,) per component, preset order, then custom components
    total: np.ndarray  # float64 (N,): weighted sum
    weights: dict[str, float]
    parsed: ParsedResponses  # the answers as parsed (pred NaN and failed True where one did not parse)
    group_size: int

    @property
    def failed(self) -> np.ndarray:
        return self.parsed.failed

    @property
    def parse_failures(self) -> int:
        return int(self.failed.sum())


def score_responses(spec: Preset, responses: list[str], mos) -> ResponseScores:
    """Parse and score what needs no other response. Pure; safe to run on any shard."""
    parsed = spec.parse(list(responses))
    mos = np.asarray(mos, dtype=np.float64)
    return ResponseScores(
        parsed, {c.name: c.compute(responses, parsed, mos) for c in spec.components if c.level == "response"}
    )


def group_layout(
    prompt_ids: list, variants: list[str], group_size: int | None = None
) -> tuple[int, dict[str, np.ndarray]]:
    """G and, per variant, the row indices as (B_v, G).

    Groups are runs of consecutive rows with equal (prompt_id, variant), all of the same length G. With
    `group_size` given, a run is cut every G rows: the same prompt drawn twice in a row (an epoch boundary,
    a manifest smaller than one step) is two groups, not one of 2G.
    """
    runs: list[list[int]] = []
    for row, key in enumerate(zip(prompt_ids, variants, strict=True)):
        same = row and key == (prompt_ids[row - 1], variants[row - 1])
        if same and (group_size is None or len(runs[-1]) < group_size):
            runs[-1].append(row)
        else:
            runs.append([row])
    sizes = {len(run) for run in runs}
    if not runs:
        raise ValueError("a batch needs at least one response")
    if len(sizes) != 1:
        raise ValueError(
            f"every prompt needs the same number of consecutive responses; got group sizes {sorted(sizes)}"
        )
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)}; expected one of {VARIANTS}")
    size = sizes.pop()
    return size, {
        v: np.array([run for run in runs if variants[run[0]] == v], dtype=np.int64).reshape(-1, size)
        for v in VARIANTS
    }


def resolve_weights(spec: Preset, weights: dict | None) -> dict[str, float]:
    resolved = dict(spec.weights)
    for name, weight in (weights or {}).items():
        if name not in resolved and not is_plugin_name(name):
            raise ValueError(
                f"preset {spec.name!r} has no component {name!r}; components: {spec.component_names}"
            )
        resolved[name] = float(weight)
    return resolved


def _slices(rows: dict[str, np.ndarray], scope: int | None, prompt_ids: list) -> dict[str, list[np.ndarray]]:
    """Per variant, the (B_k, G) row blocks that are scored as one batch: `scope` original prompts at a time
    (the papers' per-GPU batch) and, beside slice k, the perturbed copies of slice k's own prompts, as one
    GPU held a video with its copy; not the k-th `scope` perturbed groups, which belong to other prompts."""
    originals = rows["original"]
    step = scope or max(len(originals), 1)
    original = [originals[start : start + step] for start in range(0, len(originals), step)] or [originals]
    slice_of = {}
    for k, block in enumerate(original):
        for row in block[:, 0]:
            slice_of.setdefault(prompt_ids[row], k)
    perturbed: list[list[np.ndarray]] = [[] for _ in original]
    for group in rows["perturbed"]:
        if prompt_ids[group[0]] not in slice_of:
            raise ValueError(f"perturbed responses of prompt {prompt_ids[group[0]]!r}, which has no original ones")
        perturbed[slice_of[prompt_ids[group[0]]]].append(group)
    size = originals.shape[1]
    return {"original": original,
            "perturbed": [np.array(blocks, dtype=np.int64).reshape(-1, size) for blocks in perturbed]}


def score_gathered(
    spec: Preset,
    responses: list[str],
    scores: ResponseScores,
    mos,
    prompt_ids: list,
    variants: list[str] | None = None,
    weights: dict | None = None,
    scope: int | None = None,
    group_size: int | None = None,
) -> BatchRewards:
    """Group components on the gathered batch, custom components, weighted total. `group_size` (G) lets
    one prompt id stand for several adjacent groups (group_layout)."""
    mos = np.asarray(mos, dtype=np.float64)
    n = len(responses)
    variants = list(variants) if variants is not None else ["original"] * n
    if not len(mos) == len(prompt_ids) == len(variants) == n or not np.all(np.isfinite(mos)):
        raise ValueError("responses, mos, prompt_ids and variants must align, one finite MOS per response")
    if scope is not None and scope < 1:
        raise ValueError(f"scope must be a positive number of prompts, got {scope}")
    resolved = resolve_weights(spec, weights)
    size, rows = group_layout(list(prompt_ids), variants, group_size)
    parsed = scores.parsed
    values = {c.name: np.zeros(n) for c in spec.components} | dict(scores.values)

    def groups_of(index: np.ndarray) -> Groups:
        return Groups(
            parsed.pred[index],
            parsed.aspects[index],
            parsed.failed[index],
            mos[index[:, 0]],
            {name: v[index] for name, v in values.items()},
        )

    slices = _slices(rows, scope, list(prompt_ids))
    for variant in VARIANTS:
        for index in (block for block in slices[variant] if len(block)):
            view = groups_of(index)
            for component in (c for c in spec.components if c.level == "group"):
                view.scores[component.name] = values[component.name][index] = component.compute(view)
    for component in (c for c in spec.components if c.level == "variants"):
        for index, perturbed in zip(slices["original"], slices["perturbed"], strict=True):
            values[component.name][index] = component.compute(groups_of(index), groups_of(perturbed))
    for name in filter(is_plugin_name, resolved):
        values[name] = custom_component_values(name, list(responses), mos, list(prompt_ids), size, variants)
    total = sum(weight * values[name] for name, weight in resolved.items())
    return BatchRewards(values, np.asarray(total, dtype=np.float64), resolved, parsed, size)


def score_batch(spec: Preset, responses: list[str], mos, prompt_ids: list, variants: list[str] | None = None,
                **options) -> BatchRewards:
    """Every component of `spec` for one batch (G consecutive responses per prompt), plus the total;
    `options` are score_gathered's (weights, scope, group_size)."""
    return score_gathered(spec, responses, score_responses(spec, responses, mos), mos, prompt_ids, variants, **options)
