"""Bytes that pass through the driver in one GRPO step at configs/vqathinker.yaml's shape: 16 prompts of
6-frame 448 px video, each with a temporally perturbed copy (VQAThinker's temporal reward), G = 4, 8
learner ranks, 2 rollout workers — media decoded in the driver (the path before) against media decoded by
Ray tasks and left in the object store (`cluster/remote_media.py`, what `qthink train` does now).

Counted per step, as Ray serializes it: the media the driver decodes (pixels materialized in its process),
the arguments of the rollout calls (the request chunks, one per worker), the arguments of the learner calls
(one shard per rank: sequences and their media) and the results that come back to the driver (the sampled
groups: the same both ways). Videos are real H.264 files at 448 px from the demo's synthetic generator,
decoded with decord, through the real request builders; token counts are those of the tiny model's
processor (the same patch and merge sizes as Qwen2.5-VL), responses `--response-tokens` long.

An SFT step at the same shape is counted too (one target response per prompt, no rollout): before, the
driver decoded the rows and expanded the prompts itself; now the decode tasks do both and return the ids.

    .venv/bin/python -m benchmarks.driver_bytes [--prompts 16] [--response-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import ray
from ray import cloudpickle

from benchmarks.machine import machine, write_result

RESULTS = Path(__file__).parent / "results" / "driver_bytes.json"
ROOT = Path(os.environ.get("QTHINK_BENCH_DIR", "/tmp/qthink-bench"))


def _size(obj) -> int:
    return len(cloudpickle.dumps(obj))


def _pixels(requests) -> int:
    return sum((r.image if r.media_type == "image" else np.asarray(r.frames)).nbytes for r in requests)


def _step_bytes(requests, media, groups, cfg) -> dict:
    """What the driver serializes into the rollout and learner calls and gets back, for one step."""
    from learners.policy_trainer import shard_batch

    workers = cfg.rollout.num_workers
    size = -(-len(requests) // workers)
    rollout_args = sum(_size(requests[i:i + size]) for i in range(0, len(requests), size))
    sequences = [s for g, r in zip(groups, requests) if r.variant == "original" for s in g]
    shards = shard_batch(sequences, media, cfg.learner.num_ranks, cfg.learner, cfg.rollout.max_tokens)
    return {"rollout_args": rollout_args, "learner_args": sum(_size(s) for s in shards),
            "results": sum(_size(g) for g in groups)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--response-tokens", type=int, default=256)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    from cluster.batches import prompt_token_ids, request_for
    from cluster.config import ClusterConfig, load_config
    from cluster.evaluation import media_options
    from cluster.ray_cluster import init_ray
    from cluster.remote_media import remote_rollout_batch, usable_requests
    from learners.policy_trainer import shard_batch
    from rewards import get_preset
    from rollout.demo.synthetic import build_synthetic_benchmark
    from rollout.demo.tiny_model import ensure_tiny_model
    from rollout.manifest import ManifestReader
    from rollout.perturbations import perturbed_copy
    from rollout.records import RequestRef, RolloutSample

    bench = ROOT / "driver-bytes-videos"
    if not (bench / "train.parquet").exists():
        build_synthetic_benchmark(bench, images=0, videos=max(24, args.prompts + 4), video_size=448, video_frames=12)
    processor_dir = ensure_tiny_model(ROOT / "model-tiny")  # SFT's decode tasks expand prompts with its processor
    cfg = load_config("configs/vqathinker.yaml", [f"data.train={bench / 'train.parquet'}", "data.test=[]",
                                                  f"train.prompts_per_step={args.prompts}",
                                                  f"model.path={processor_dir}"])
    preset = get_preset(cfg.reward.preset)
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(processor_dir)
    init_ray(ClusterConfig(num_cpus=2))
    step, seed = 0, cfg.train.seed

    def groups_for(requests):  # G responses per request, with the prompt ids the engine would report
        out = []
        for r in requests:
            ids = prompt_token_ids(processor, r)
            out.append([RolloutSample(r.prompt_id, ids, list(range(args.response_tokens)),
                                      [-1.0] * args.response_tokens, text="x" * args.response_tokens,
                                      variant=r.variant, index=j) for j in range(cfg.rollout.n)])
        return out

    # before: the driver reads the rows and decodes them itself
    reader = ManifestReader(cfg.data.train, seed=seed, options=media_options(cfg))
    started = time.perf_counter()
    samples = [s for _, s in zip(range(args.prompts), reader)]
    originals = [request_for(s, seed * 1_000_003 + step * 1009 + i, preset, cfg) for i, s in enumerate(samples)]
    before_requests = originals + [perturbed_copy(r, seed * 7919 + step * 131 + i) for i, r in enumerate(originals)
                                   if cfg.reward.temporal and r.media_type == "video"]
    decode_s = time.perf_counter() - started
    groups = groups_for(before_requests)
    before = {"decoded_in_driver": _pixels(before_requests),
              **_step_bytes(before_requests, {r.prompt_id: r for r in originals}, groups, cfg)}

    # after: Ray tasks decode; the driver holds references (timed twice: the first starts the task workers)
    context, remote_s = ray.put((preset, cfg)), []
    for _ in range(2):
        reader = ManifestReader(cfg.data.train, seed=seed, options=media_options(cfg))
        started = time.perf_counter()
        rows, refs = remote_rollout_batch(reader, args.prompts, step, cfg.reward.temporal, context, seed)
        ray.wait(list({r.ref for r in refs}), num_returns=len({r.ref for r in refs}))
        remote_s.append(time.perf_counter() - started)
    assert [r.id for r in rows] == [s.row.id for s in samples]
    after = {"decoded_in_driver": 0, **_step_bytes(refs, {r.prompt_id: r for r in refs if r.variant == "original"},
                                                    groups, cfg)}
    for row in (before, after):
        row["total"] = sum(v for k, v in row.items() if k != "total")
        row["total_without_results"] = row["total"] - row["results"]

    # SFT: one target per prompt; the learner shards carry the media (before) or references (after), and
    # after, the decode tasks' statuses (each prompt's token ids) come back to the driver
    def sft_shards(requests, ids):
        targets = [RolloutSample(r.prompt_id, i, list(range(args.response_tokens))) for r, i in zip(requests, ids)]
        shards = shard_batch(targets, {r.prompt_id: r for r in requests}, cfg.learner.num_ranks, cfg.learner,
                             cfg.rollout.max_tokens)
        return sum(_size(shard) for shard in shards)

    reader = ManifestReader(cfg.data.train, seed=seed, options=media_options(cfg))
    usable = usable_requests(reader, args.prompts, context, prompt_ids=True)
    sft_refs = [RequestRef(row.id, decoded.media_type, ref) for row, decoded, ref in usable]
    sft_ids = [decoded.prompt_ids for _, decoded, _ in usable]
    assert sft_ids == [prompt_token_ids(processor, r) for r in originals]  # the same prompts, expanded off the driver
    sft = {"before": {"decoded_in_driver": _pixels(originals), "learner_args": sft_shards(originals, sft_ids),
                      "task_statuses": 0},
           "after": {"decoded_in_driver": 0, "learner_args": sft_shards(sft_refs, sft_ids),
                     "task_statuses": sum(_size(decoded) for _, decoded, _ in usable)}}
    for row in sft.values():
        row["total"] = sum(row.values())
    sft["reduction"] = sft["before"]["total"] / sft["after"]["total"]
    result = {"benchmark": "driver_bytes", "machine": machine("ray"), "shape": {
        "prompts": args.prompts, "frames": cfg.data.num_frames, "max_pixels": cfg.data.max_pixels,
        "perturbed_copies": sum(r.variant == "perturbed" for r in refs), "n": cfg.rollout.n,
        "learner_ranks": cfg.learner.num_ranks, "rollout_workers": cfg.rollout.num_workers,
        "response_tokens": args.response_tokens, "frame_shape": list(np.asarray(before_requests[0].frames).shape)},
        "before": before, "after": after, "reduction": before["total"] / after["total"],
        "reduction_without_results": before["total_without_results"] / after["total_without_results"],
        "sft": sft, "driver_decode_s": decode_s, "remote_decode_first_s": remote_s[0], "remote_decode_s": remote_s[1],
        "notes": "perturbed copies are made by the rollout worker that fetches the original (no object of their own)"}
    print(f"{'bytes per step':24} {'before':>12} {'after':>12}")
    for key in ("decoded_in_driver", "rollout_args", "learner_args", "results", "total"):
        print(f"{key:24} {before[key]:12,d} {after[key]:12,d}")
    print(f"reduction {result['reduction']:.0f}x ({result['reduction_without_results']:.0f}x without the sampled "
          f"groups); decode in the driver {decode_s:.2f} s, by tasks {remote_s[1]:.2f} s ({remote_s[0]:.2f} s the "
          "first time, starting their workers)")
    print(f"SFT step: {sft['before']['total']:,d} -> {sft['after']['total']:,d} bytes ({sft['reduction']:.0f}x)")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
