"""Weight sync learner -> rollout workers on CPU, both paths side by side: seconds vs the bytes/bandwidth
bound, and correctness.

Measured (docs/design.md "Performance targets": weight sync <= 3x the bytes/bandwidth bound on CPU):
after one real GRPO train step (`LearnerGroup`, DeepSpeed on gloo), the learner's full weights are synced
to 1..N real vLLM `RolloutWorker`s along two paths:
- transfer (what `qthink train` uses): `RolloutPool.broadcast_weights` — vLLM's weight-transfer protocol with
  the gloo engine: rank 0 gathers and packs buckets and broadcasts them; every engine loads them layer by
  layer, re-packs and resets its caches (`transfer_sync_s`, `transfer_ratio_to_bound`);
- blob (the path it replaced, kept here as the baseline):
  export  rank 0 gathers the weights into one safetensors blob (`PolicyTrainer.weights_blob`),
  put     ... and puts them in the object store once,
  reload  every worker fetches the object and reloads its engine (`RolloutWorker.load_weights`).
`sync_s` = export + put + reload (all workers); `ratio_to_bound` = sync_s / (bytes / bandwidth), with the
bandwidth of a numpy copy of the same number of bytes into a reused buffer on this machine (also reported:
a copy into a fresh allocation, which pays first-touch page faults as every new bytes object or tensor on
the path does, and ray.put + ray.get of a same-size bytes object). A per-worker breakdown of the reload
(object fetch, the engine's reload: reload_weights from views of the blob and cache resets; the blob's
parse timed on its own) shows where the time
goes. Correctness: the synced engine samples new sequences and the learner scores them,
`max_logprob_diff_after_sync`; the same difference on the initial weights, before any step, is the
numerical floor it is to be compared with (vLLM's CPU kernels vs torch).
The correctness check after the runs is on the transfer path (the last sync).
Shapes: `tiny` (~2 MB of weights, fixed costs dominate), `small` (~18 MB) and `medium` (0.15B parameters,
~600 MB, where the bytes dominate).

    .venv/bin/python -m benchmarks.weight_sync [--shapes tiny small medium] [--workers 1 2] [--ranks 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

import numpy as np
import ray

from benchmarks.machine import machine, median_seconds, write_result

RESULTS = Path(__file__).parent / "results" / "weight_sync.json"
def bandwidth(nbytes: int, repeats: int) -> dict:
    """Bytes/s of one in-memory copy of `nbytes` here: into a reused buffer (the bound), into a fresh
    allocation (what a copy into a new bytes/tensor costs: first-touch page faults), and ray.put + ray.get."""
    src = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    memcpy = median_seconds(lambda: np.copyto(dst, src), repeats)
    fresh = median_seconds(lambda: src.tobytes(), repeats)
    blob = src.tobytes()
    put_get = median_seconds(lambda: ray.get(ray.put(blob)), repeats)
    return {"memcpy_bytes_per_s": nbytes / memcpy, "fresh_copy_bytes_per_s": nbytes / fresh,
            "ray_put_get_bytes_per_s": nbytes / put_get}


# --- run inside the actors (ray's __ray_call__ runs a function with the actor instance as first argument) ---

def _export_and_put(learner) -> tuple[list, int, float, float]:
    """Learner.weights_ref, with its two halves timed apart."""
    start = time.perf_counter()
    blob = learner.trainer.weights_blob()
    exported = time.perf_counter()
    refs = [ray.put(blob)] if learner.rank == 0 else []
    return refs, blob.nbytes, exported - start, time.perf_counter() - exported


def _reload_breakdown(worker, refs: list, version: int) -> dict:
    """RolloutWorker.load_weights split into: fetch from the object store, the engine's reload (views of the
    blob, reload_weights, lm_head repack, cache resets); the blob's parse into views timed on its own."""
    from rollout.safetensors_blob import tensor_views

    t0 = time.perf_counter()
    blob = ray.get(refs[0])
    t1 = time.perf_counter()
    worker.engine.load_weights(blob, version, timeout_s=worker.engine.config.sync_timeout_s)
    t2 = time.perf_counter()
    tensor_views(blob)
    return {"fetch_s": t1 - t0, "engine_reload_s": t2 - t1, "blob_parse_s": time.perf_counter() - t2}


def requests(seed: int):
    from rollout.engine import default_video_meta
    from rollout.records import RolloutRequest

    rng = np.random.default_rng(0)
    reqs = [RolloutRequest(f"img{i}", "image", image=rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
            for i in range(2)]
    reqs.append(RolloutRequest("vid0", "video", frames=rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8),
                               video_meta=default_video_meta(4)))
    for i, r in enumerate(reqs):
        r.seed = seed + i
    return reqs


def train_batch(groups, reqs):
    seqs = [dataclasses.replace(s, advantage=1.0 if s.index == 0 else -1.0) for g in groups for s in g]
    return seqs, {r.prompt_id: r for r in reqs}


def logprob_diff(engine_lp: list[list[float]], learner_lp: list[list[float]]) -> tuple[float, float]:
    """(max, mean) |engine - learner| per response token."""
    d = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)) for a, b in zip(engine_lp, learner_lp)])
    return float(d.max()), float(d.mean())


def run_shape(args, shape: str) -> dict:
    from actors.learner import LearnerGroup
    from actors.rollout_worker import RolloutPool
    from cluster.config import LearnerConfig, QThinkConfig, RolloutConfig
    from cluster.placement import rollout_pool
    from rollout.demo.tiny_model import ensure_tiny_model

    model_dir = str(ensure_tiny_model(
        Path(os.environ.get("QTHINK_BENCH_DIR", "/tmp/qthink-bench")) / f"model-{shape}", 0, shape))
    rcfg = RolloutConfig(num_workers=max(args.workers), n=2, max_tokens=args.max_tokens, max_model_len=2048)
    big = rollout_pool(QThinkConfig(rollout=rcfg), model_dir)
    learner = LearnerGroup(model_dir, LearnerConfig(num_ranks=args.ranks, lr=2e-2, beta=0.0, micro_batch_size=4),
                           max_tokens=args.max_tokens)

    # numerics baseline: engine vs learner on the SAME (initial) weights; then one real GRPO step
    reqs = requests(0)
    batch = train_batch(big.generate(reqs), reqs)
    baseline = logprob_diff([s.logprobs for s in batch[0]], learner.score(*batch))
    metrics = learner.train_step(*batch)

    def export_put():
        start = time.perf_counter()
        out = ray.get([r.__ray_call__.remote(_export_and_put) for r in learner.ranks])
        return out[0], time.perf_counter() - start

    row = {"ranks": args.ranks, "max_logprob_diff_before_step": baseline[0],
           "mean_logprob_diff_before_step": baseline[1],
           "train_step_rollout_logprob_gap": metrics.get("rollout_logprob_gap")}
    version = 0
    exports = []
    for _ in range(args.repeats + 1):  # first is a warm-up
        (refs, nbytes, export_s, put_s), total_s = export_put()
        exports.append((export_s, put_s, total_s))
    ref = refs[0]
    row["bytes"] = nbytes
    row["export_s"] = statistics.median(e[0] for e in exports[1:])
    row["put_s"] = statistics.median(e[1] for e in exports[1:])
    row["export_put_call_s"] = statistics.median(e[2] for e in exports[1:])  # incl. the actor call round trip

    bw = bandwidth(nbytes, max(5, args.repeats))  # at the payload's size (a small one stays in the caches)
    bound_s = nbytes / bw["memcpy_bytes_per_s"]
    row.update(bw, bound_s=bound_s, by_workers={})
    # where a worker's blob reload goes (one worker at a time, so nothing competes with it)
    version += 1
    row["reload_breakdown"] = [ray.get(w.__ray_call__.remote(_reload_breakdown, [ref], version)) for w in big.workers]
    for w in args.workers:
        times = []  # the object-store path: export + put (above), then every worker reloads from the blob
        for _ in range(args.repeats + 1):
            version += 1
            start = time.perf_counter()
            ray.get([worker.load_weights.remote(ref, version) for worker in big.workers[:w]])
            times.append(time.perf_counter() - start)
        reload_s = statistics.median(times[1:])
        sync_s = row["export_put_call_s"] + reload_s
        # the weight-transfer path: rank 0 gathers, packs and broadcasts buckets; every engine receives,
        # loads them layer by layer and resets its caches (the first call also builds the group)
        pool = RolloutPool(lambda i: big.workers[i], w, sync_timeout_s=rcfg.sync_timeout_s,
                           sync_bucket_mb=args.bucket_mb)
        transfer = []
        for _ in range(args.repeats + 1):
            version += 1
            transfer.append(pool.broadcast_weights(learner, version))
        transfer_s = statistics.median(transfer[1:])
        row["by_workers"][w] = {"reload_all_s": reload_s, "sync_s": sync_s, "ratio_to_bound": sync_s / bound_s,
                                "ratio_to_fresh_copy": sync_s / (nbytes / bw["fresh_copy_bytes_per_s"]),
                                "ratio_to_ray_put_get": sync_s / (nbytes / bw["ray_put_get_bytes_per_s"]),
                                "transfer_sync_s": transfer_s, "transfer_first_sync_s": transfer[0],
                                "transfer_ratio_to_bound": transfer_s / bound_s,
                                "transfer_over_blob": transfer_s / sync_s}

    # the synced engines sample; the learner scores the same sequences
    after_reqs = requests(100)
    after = big.generate(after_reqs)
    assert {s.policy_version for g in after for s in g} == {version}
    engine_lp = [s.logprobs for g in after for s in g]
    row["max_logprob_diff_after_sync"], row["mean_logprob_diff_after_sync"] = logprob_diff(
        engine_lp, learner.score(*train_batch(after, after_reqs)))
    row["sequences_compared"] = len(engine_lp)
    for actor in big.workers + learner.ranks:
        ray.kill(actor)
    return row


def notes(result: dict) -> list[str]:
    """Where the time goes and what the numbers mean, from the numbers (recorded with the JSON)."""
    out = []
    load, cpus = result["loadavg_start"][0], result["machine"]["cpu_count"]
    if load > 0.5 * cpus:
        out.append(f"Background load: 1-min loadavg {load:.1f} at start, {result['loadavg_end'][0]:.1f} at the end, "
                   f"on {cpus} cores.")
    for shape, r in result["shapes"].items():
        one = r["by_workers"].get(1, r["by_workers"].get("1"))
        b = r["reload_breakdown"][0]
        out.append(
            f"{shape} ({r['bytes'] / 1e6:.1f} MB): sync {one['sync_s']:.3f} s = {one['ratio_to_bound']:.0f}x "
            f"the memcpy bound ({r['bound_s'] * 1e3:.2f} ms at {r['memcpy_bytes_per_s'] / 1e9:.1f} GB/s), "
            f"{one['ratio_to_fresh_copy']:.0f}x one copy into fresh memory "
            f"({r['fresh_copy_bytes_per_s'] / 1e9:.1f} GB/s) on the blob path; transfer path "
            f"{one['transfer_sync_s']:.3f} s = {one['transfer_ratio_to_bound']:.1f}x the bound, "
            f"{one['transfer_over_blob']:.2f}x the blob path. Blob path: export {r['export_s']:.3f} s (one "
            f"safetensors blob), put {r['put_s']:.3f} s, "
            f"actor-call overhead {r['export_put_call_s'] - r['export_s'] - r['put_s']:.3f} s; "
            f"reload {one['reload_all_s']:.3f} s, of which in one worker: fetch {b['fetch_s']:.3f} s, engine reload "
            f"{b['engine_reload_s']:.3f} s (reload_weights + repack + cache resets; the blob's parse alone "
            f"{b['blob_parse_s'] * 1e3:.1f} ms). Logprob diff after sync "
            f"{r['max_logprob_diff_after_sync']:.1e} (max) vs {r['max_logprob_diff_before_step']:.1e} before any "
            "step on the same weights (engine vs learner numerics, no sync involved): same order, so the engine "
            "samples from the synced policy.")
    out.append("On the CPU path the bytes are copied 3 times: into the blob (export), into the object store (put), "
               "and by reload_weights into the engine's parameters (plus its repacking for the CPU GEMMs); the "
               "fetch is a view of shared memory, and with the engine in the worker's process the blob reaches "
               "vLLM's worker as it is. Small payloads are dominated by fixed per-call costs (RPCs and resets).")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["tiny", "small", "medium"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="sync to pools of these sizes")
    p.add_argument("--ranks", type=int, default=1, help="learner ranks (gloo)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bucket-mb", type=int, default=256, help="transfer path: rollout.sync_bucket_mb")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    from cluster.config import ClusterConfig
    from cluster.ray_cluster import init_ray
    from rollout.demo.tiny_model import SHAPES

    load_start = os.getloadavg()
    init_ray(ClusterConfig(num_cpus=args.ranks + max(args.workers)))
    result = {"benchmark": "weight_sync", "machine": machine("torch", "vllm", "ray", "deepspeed"),
              "loadavg_start": load_start, "paths": {
                  "transfer": "vLLM weight-transfer protocol, gloo engine: gather, pack buckets, broadcast, layerwise "
                              "load, finalize, re-pack, cache resets", "blob": "one safetensors blob (numpy), one "
                  "object-store put, every worker reloads (reload_weights + cache resets)"},
              "bucket_mb": args.bucket_mb, "goal_ratio_to_bound": 3.0, "shapes": {}}
    for shape in args.shapes:
        row = run_shape(args, shape)
        row["params"] = row["bytes"] // 4  # fp32 (plus a small safetensors header), tied lm_head sent once
        row["shape"] = SHAPES[shape]
        result["shapes"][shape] = row
    result["loadavg_end"] = os.getloadavg()
    result["notes"] = notes(result)

    print(f"\n{'shape':6} {'MB':>7} {'workers':>7} {'bound_s':>8} {'blob_s':>7} {'ratio':>6} {'transfer_s':>10} "
          f"{'ratio':>6} {'t/blob':>6} {'max_lp_diff':>11}")
    for shape, r in result["shapes"].items():
        for w, b in r["by_workers"].items():
            print(f"{shape:6} {r['bytes'] / 1e6:7.1f} {w:7d} {r['bound_s']:8.4f} {b['sync_s']:7.3f} "
                  f"{b['ratio_to_bound']:6.1f} {b['transfer_sync_s']:10.3f} {b['transfer_ratio_to_bound']:6.1f} "
                  f"{b['transfer_over_blob']:6.2f} {r['max_logprob_diff_after_sync']:11.2e}")
        print(f"       reload breakdown per worker: {r['reload_breakdown']}")
    print("\n".join(result["notes"]))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
