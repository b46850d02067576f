"""`qthink reward --preset NAME --in batch.jsonl --out scored.jsonl`: score one JSONL file as one batch.

Input line: {"prompt_id", "mos", "response", "variant": "original" | "perturbed"} (variant optional,
default original), G consecutive lines per prompt. Output line: the input line plus
"rewards": {component: value} for every component of the preset (and custom ones) and "total".
Perturbed lines are inputs to the temporal bonus and are written back with their own components.
"""

import json
from pathlib import Path

import numpy as np

from rewards.compose import score_batch
from rewards.presets import Preset


def score_jsonl(
    spec: Preset, in_path, out_path, weights: dict | None = None, scope: int | None = None,
    group_size: int | None = None,
) -> dict:
    """Score the file, write the scored copy; return the summary (rows, prompts, parse failures, means).
    `group_size` (G) keeps a prompt id that appears in two adjacent groups two groups (rewards.group_layout)."""
    with Path(in_path).open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    result = score_batch(
        spec,
        [str(row["response"]) for row in rows],
        [float(row["mos"]) for row in rows],
        [row["prompt_id"] for row in rows],
        [row.get("variant", "original") for row in rows],
        weights=weights,
        scope=scope,
        group_size=group_size,
    )
    with Path(out_path).open("w", encoding="utf-8") as f:
        for k, row in enumerate(rows):
            rewards = {name: float(values[k]) for name, values in result.components.items()}
            f.write(json.dumps(row | {"rewards": rewards, "total": float(result.total[k])}) + "\n")
    return {
        "preset": spec.name,
        "rows": len(rows),
        "prompts": len({json.dumps(row["prompt_id"]) for row in rows}),
        "group_size": result.group_size,
        "parse_failures": result.parse_failures,
        "means": {name: float(np.mean(values)) for name, values in result.components.items()},
        "total_mean": float(np.mean(result.total)),
    }
