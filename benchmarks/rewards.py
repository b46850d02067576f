"""Reward throughput: 512 prompts x G = 8, every component of `qthink` and `preresq-iqa`, one worker.

Run it as a module (the file name would shadow the `rewards` package if run as a script).
Goal (docs/design.md): <= 100 ms per batch including the global ranking. Times the whole `score_batch`
(parsing included) and, from the same runs, each component on its own. Prints a table and writes
benchmarks/results/rewards.json with the machine description.

    python -m benchmarks.rewards [--prompts 512] [--group-size 8] [--repeats 15]
"""

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.machine import machine, write_result
from rewards import ResponseScores, get_preset, score_batch, score_responses
from rewards.compose import group_layout
from rewards.groups import Groups

PRESETS = ("qthink", "preresq-iqa")
GOAL_MS = 100.0


def synthetic_batch(
    preset: str, n_prompts: int, size: int, seed: int = 0
) -> tuple[list[str], np.ndarray, list[int]]:
    """Plausible responses: reasoning text, a score near the MOS (five aspect lines for PreResQ)."""
    rng = np.random.default_rng(seed)
    mos = np.repeat(np.round(rng.uniform(1, 5, n_prompts), 2), size)
    words = ("sharp", "good", "blurry", "noisy", "fair", "excellent", "poor", "colour", "detail")
    responses = []
    for y in mos:
        reasoning = " ".join(rng.choice(words, 40))
        scores = np.clip(y + rng.normal(0, 0.5, 5 if preset.startswith("preresq") else 1), 1, 5)
        answer = "\n".join(f"{s:.2f}" for s in scores)
        responses.append(f"<think>{reasoning}</think>\n<answer>{answer}</answer>")
    return responses, mos, np.repeat(np.arange(n_prompts), size).tolist()


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def component_timings(preset: str, responses, mos, ids, repeats: int) -> dict[str, float]:
    """Median ms of each component alone (parse timed as its own row)."""
    spec = get_preset(preset)
    timings = {"parse": median_ms(lambda: spec.parse(responses), repeats)}
    parsed = spec.parse(responses)
    scores: ResponseScores = score_responses(spec, responses, mos)
    size, rows = group_layout(ids, ["original"] * len(ids))
    index = rows["original"]
    groups = Groups(
        parsed.pred[index],
        parsed.aspects[index],
        parsed.failed[index],
        mos[index[:, 0]],
        {name: v[index] for name, v in scores.values.items()},
    )
    for component in spec.components:
        if component.level == "response":
            timings[component.name] = median_ms(
                lambda c=component: c.compute(responses, parsed, mos), repeats
            )
        elif component.level == "group":
            timings[component.name] = median_ms(lambda c=component: c.compute(groups), repeats)
            groups.scores[component.name] = component.compute(groups)
        else:  # the temporal bonus, original batch against itself as the perturbed copy
            timings[component.name] = median_ms(lambda c=component: c.compute(groups, groups), repeats)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rewards.json")
    args = parser.parse_args()

    results = {}
    for preset in PRESETS:
        responses, mos, ids = synthetic_batch(preset, args.prompts, args.group_size)
        total = median_ms(partial(score_batch, get_preset(preset), responses, mos, ids), args.repeats)
        results[preset] = {
            "score_batch_ms": total,
            "components_ms": component_timings(preset, responses, mos, ids, args.repeats),
        }

    print(f"rewards, {args.prompts} prompts x G={args.group_size}, one worker, median of {args.repeats} (ms)")
    for preset, r in results.items():
        verdict = "ok" if r["score_batch_ms"] <= GOAL_MS else "OVER GOAL"
        print(f"\n{preset:<14} score_batch {r['score_batch_ms']:8.2f}   (goal {GOAL_MS:.0f}: {verdict})")
        for name, ms in r["components_ms"].items():
            print(f"  {name:<14} {ms:8.2f}")
    report = {
        "prompts": args.prompts,
        "group_size": args.group_size,
        "repeats": args.repeats,
        "goal_ms": GOAL_MS,
        "machine": machine("numpy", "scipy"),
        "presets": results,
    }
    write_result(report, args.out)


if __name__ == "__main__":
    main()
