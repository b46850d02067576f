"""Weight sync learner -> rollout workers on CPU, through vLLM's weight-transfer protocol with qthink's gloo
engine (what `qthink train` uses): seconds vs the bytes/bandwidth bound, where the time goes, correctness.

Measured (docs/design.md "Performance targets": weight sync <= 3x the bytes/bandwidth bound on CPU): after one
real GRPO train step (`LearnerGroup`, DeepSpeed on gloo), `RolloutPool.broadcast_weights` syncs the learner's
weights to 1..N real vLLM `RolloutWorker`s: rank 0 gathers them, packs buckets of whole layers and broadcasts
them; every engine loads them layer by layer, re-packs and resets its caches. `sync_s` is the median after a
warm-up (the first sync also builds the group: `first_sync_s`); `ratio_to_bound` = sync_s / (bytes / the
bandwidth of a numpy copy of as many bytes into a reused buffer, measured in the same run; a copy into fresh
memory, which pays first-touch page faults, is reported too). The profile times one sync's parts, for each
pool size: the sender's gather + pack + broadcast, and each phase in each engine (start; update = waiting for
bytes + vLLM's layerwise load; finish = finalize + re-pack; cache resets). Correctness: the synced engine
samples new sequences and the learner scores them (`max_logprob_diff_after_sync`); the same difference on the
initial weights, before any step, is the numerical floor (vLLM's CPU kernels vs torch).
Shapes: `tiny` (~2 MB of weights, fixed costs dominate), `small` (~18 MB) and `medium` (~0.15B parameters,
~600 MB, where the bytes dominate).

The object-store path this replaced (one safetensors blob, `ray.put`, `reload_weights` in every engine) was
measured side by side with it in session 11 before it was removed; benchmarks/README.md has that table.

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
    """Bytes/s of one in-memory copy of `nbytes` here: into a reused buffer (the bound) and into a fresh
    allocation (what a copy into new memory costs: first-touch page faults)."""
    src = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    memcpy = median_seconds(lambda: np.copyto(dst, src), repeats)
    fresh = median_seconds(lambda: src.tobytes(), repeats)
    return {"memcpy_bytes_per_s": nbytes / memcpy, "fresh_copy_bytes_per_s": nbytes / fresh}


# --- run inside the actors (ray's __ray_call__ runs a function with the actor instance as first argument) ---

def _timed_send(learner) -> tuple[int, float]:
    start = time.perf_counter()
    sent = learner.trainer.sender.send()
    return sent, time.perf_counter() - start


def _time_loads(vllm_worker) -> None:
    """Inside the engine: time every `load_weights` call (vLLM's layerwise load: materialize, copy, re-pack)."""
    model, spent = vllm_worker.weight_transfer_engine.model, []
    load = model.load_weights

    def timed(weights):
        start = time.perf_counter()
        try:
            return load(weights)
        finally:
            spent.append(time.perf_counter() - start)

    model.load_weights, model.qthink_load_s = timed, spent


def _load_seconds(vllm_worker) -> float:
    model = vllm_worker.weight_transfer_engine.model
    del model.load_weights  # the class's own again
    return sum(model.__dict__.pop("qthink_load_s"))


def _timed_receive(worker, update_info: dict, version: int) -> dict:
    llm, out = worker.engine.llm, {}
    llm.collective_rpc(_time_loads)
    for phase, kwargs in (("start_weight_update", {}), ("update_weights", {"update_info": update_info}),
                          ("finish_weight_update", {})):
        start = time.perf_counter()
        llm.collective_rpc(phase, kwargs=kwargs)
        out[phase] = time.perf_counter() - start
    out["update_load"] = llm.collective_rpc(_load_seconds)[0]
    out["update_wait"] = out["update_weights"] - out["update_load"]  # for bytes on the wire
    start = time.perf_counter()
    llm.llm_engine.reset_encoder_cache()
    llm.reset_mm_cache()
    llm.reset_prefix_cache()
    out["reset_caches"] = time.perf_counter() - start
    worker.engine.version = version
    return out


def _profile(pool, learner, info: dict, version: int) -> dict:
    """One sync to every worker of `pool`, each side timed from inside."""
    send = learner.ranks[0].__ray_call__.remote(_timed_send)
    others = [r.send_weights.remote() for r in learner.ranks[1:]]
    receives = [wk.__ray_call__.remote(_timed_receive, info, version) for wk in pool.workers]
    (_, send_s), phases = ray.get(send), ray.get(receives)
    ray.get(others)
    return {"sender_gather_pack_broadcast_s": send_s, "engine_phases_s": phases}


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
    from rollout.weight_transfer import metas_from_info

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

    row = {"ranks": args.ranks, "max_logprob_diff_before_step": baseline[0],
           "mean_logprob_diff_before_step": baseline[1],
           "train_step_rollout_logprob_gap": metrics.get("rollout_logprob_gap"), "by_workers": {}}
    version = 0
    for w in args.workers:
        pool = RolloutPool(lambda i: big.workers[i], w, sync_timeout_s=rcfg.sync_timeout_s,
                           sync_bucket_mb=args.bucket_mb)
        times = []
        for _ in range(args.repeats + 1):
            version += 1
            times.append(pool.broadcast_weights(learner, version))
        version += 1
        row["by_workers"][w] = {"sync_s": statistics.median(times[1:]), "first_sync_s": times[0], "all_s": times,
                                "profile": _profile(pool, learner, pool.update_info, version)}
    info = pool.update_info
    row["bytes"] = nbytes = sum(m.nbytes for m in metas_from_info(info["names"], info["dtype_names"],
                                                                  info["shapes"]))
    row["buckets"] = len(info["buckets"])
    bw = bandwidth(nbytes, max(5, args.repeats))  # at the payload's size (a small one stays in the caches)
    row.update(bw, bound_s=nbytes / bw["memcpy_bytes_per_s"])
    for b in row["by_workers"].values():
        b["ratio_to_bound"] = b["sync_s"] / row["bound_s"]
        b["ratio_to_fresh_copy"] = b["sync_s"] / (nbytes / bw["fresh_copy_bytes_per_s"])

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
    for i in range(len(big.workers)):  # the next shape reserves anew
        ray.util.remove_placement_group(ray.util.get_placement_group(f"qthink-rollout-{i}"))
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
        profile = one["profile"]
        engine = profile["engine_phases_s"][0]
        out.append(
            f"{shape} ({r['bytes'] / 1e6:.1f} MB, {r['buckets']} buckets): sync {one['sync_s']:.3f} s = "
            f"{one['ratio_to_bound']:.1f}x the memcpy bound ({r['bound_s'] * 1e3:.2f} ms at "
            f"{r['memcpy_bytes_per_s'] / 1e9:.1f} GB/s), {one['ratio_to_fresh_copy']:.1f}x one copy into fresh memory; "
            f"first sync (builds the group) {one['first_sync_s']:.3f} s. One sync from inside: the sender's gather + "
            f"pack + broadcast {profile['sender_gather_pack_broadcast_s']:.3f} s; in the engine start "
            f"{engine['start_weight_update']:.3f} s, update {engine['update_weights']:.3f} s (waiting for bytes "
            f"{engine['update_wait']:.3f} s, vLLM's layerwise load {engine['update_load']:.3f} s), "
            f"finish (finalize + re-pack) {engine['finish_weight_update']:.3f} s, cache resets "
            f"{engine['reset_caches']:.3f} s. "
            f"Logprob diff after sync {r['max_logprob_diff_after_sync']:.1e} (max) vs "
            f"{r['max_logprob_diff_before_step']:.1e} before any step on the same weights.")
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
              "loadavg_start": load_start, "path": "vLLM weight-transfer protocol, gloo engine: "
              "gather, pack buckets, broadcast, layerwise load, finalize, re-pack, cache resets",
              "bucket_mb": args.bucket_mb, "goal_ratio_to_bound": 3.0, "shapes": {}}
    for shape in args.shapes:
        row = run_shape(args, shape)
        row["params"] = row["bytes"] // 4  # fp32, a tied lm_head sent once
        row["shape"] = SHAPES[shape]
        result["shapes"][shape] = row
    result["loadavg_end"] = os.getloadavg()
    result["notes"] = notes(result)

    print(f"\n{'shape':6} {'MB':>7} {'workers':>7} {'bound_s':>8} {'sync_s':>7} {'ratio':>6} {'first_s':>7} "
          f"{'max_lp_diff':>11}")
    for shape, r in result["shapes"].items():
        for w, b in r["by_workers"].items():
            print(f"{shape:6} {r['bytes'] / 1e6:7.1f} {w:7d} {r['bound_s']:8.4f} {b['sync_s']:7.3f} "
                  f"{b['ratio_to_bound']:6.1f} {b['first_sync_s']:7.3f} {r['max_logprob_diff_after_sync']:11.2e}")
    print("\n".join(result["notes"]))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
