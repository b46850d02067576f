"""Serve under load: a concurrency sweep against the running app, autoscaling up and back down, and the
Serve overhead against a direct engine call.

Measured (docs/design.md "Performance targets": Serve p50 <= 1.1x a direct engine call), on the tiny model with
local Ray, the app started here (`cluster.serve.start`, min 1 / max `--max-replicas` replicas, short
autoscaling delays), every request `POST /v1/score` for one 112 x 112 PNG as base64 JSON, greedy:
1. Serve vs direct, at concurrency 1: the same request through `RolloutEngine.generate` (decoded once) in a
   Ray actor shaped like one replica, and through HTTP, in alternating blocks; p50 of each, and the ratio;
2. the sweep: for each concurrency, `--requests` requests from that many bounded client loops (httpx async,
   loopback), timed at the client (p50/p99, requests/s, errors by HTTP status or client exception) and by
   the server (`latency_ms`);
3. replicas over time: `serve.status()` polled every second through the sweep and the idle period after it,
   until the deployment is back at its minimum (or `--idle-timeout` passes).
Prints a table; writes benchmarks/results/serve_load.json with the machine description and its load.

    .venv/bin/python -m benchmarks.serve_load [--concurrency 1 8 32] [--requests 1000] [--max-replicas 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import dataclasses
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine, write_result
from cluster.ray_cluster import free_port, init_ray, use_local_env

RESULTS = Path(__file__).parent / "results" / "serve_load.json"


def test_png(size: int = 112) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def serve_vs_direct(model_dir: str, cfg, url: str, png: bytes, blocks: int, calls: int) -> dict:
    """p50 of the bare engine call and of a Serve request for the same image, taken in alternating blocks
    (this machine's background load changes by the minute; interleaving exposes both to the same load).
    The engine runs in an actor shaped like one replica (its CPUs, vLLM threads unbound); the replica is
    idle meanwhile, so the two never compete."""
    import httpx
    import ray

    from cluster.serve_requests import ScoreInput, upload_request
    from rewards import get_preset
    from rollout.engine import RolloutEngine

    @ray.remote(num_cpus=cfg.serve.cpus_per_replica, runtime_env={"env_vars": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}})
    class DirectEngine:
        def __init__(self):
            self.engine = RolloutEngine(model_dir, cfg.rollout)

        def time_calls(self, request, calls: int) -> list[float]:
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                self.engine.generate([request], n=1, temperature=0.0)
                times.append(1000 * (time.perf_counter() - started))
            return times

    request = upload_request(ScoreInput("image", png, 1, False, None), get_preset(cfg.reward.preset), cfg, "direct")
    body = {"image": base64.b64encode(png).decode(), "samples": 1}
    actor = DirectEngine.remote()
    direct, served, server_ms = [], [], []
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            ray.get(actor.time_calls.remote(request, 1))  # warm-up, both sides
            client.post("/v1/score", json=body).raise_for_status()
            for _ in range(blocks):
                direct += ray.get(actor.time_calls.remote(request, calls))
                for _ in range(calls):
                    started = time.perf_counter()
                    response = client.post("/v1/score", json=body)
                    response.raise_for_status()
                    served.append(1000 * (time.perf_counter() - started))
                    server_ms.append(response.json()["latency_ms"])
    finally:
        ray.kill(actor)
    summary = {name: {"calls": len(v), "p50_ms": round(percentile(v, 50), 1), "p99_ms": round(percentile(v, 99), 1)}
               for name, v in (("direct", direct), ("serve", served), ("serve_server_side", server_ms))}
    summary["serve_over_direct_p50"] = round(summary["serve"]["p50_ms"] / summary["direct"]["p50_ms"], 3)
    return summary


def replica_counts() -> tuple[int, int]:
    """(running, starting) replicas of the app: a started replica takes ~20-60 s (its engine) to run."""
    from ray import serve

    from cluster.serve import APP_NAME

    app = serve.status().applications.get(APP_NAME)
    states = [d.replica_states for d in app.deployments.values()] if app else []
    return sum(s.get("RUNNING", 0) for s in states), sum(s.get("STARTING", 0) for s in states)


class ReplicaWatch:
    """(seconds, running, starting) replicas every `period_s` (serve.status() blocks: it runs in a thread)."""

    def __init__(self, t0: float, period_s: float = 1.0):
        self.t0, self.period_s, self.timeline = t0, period_s, []

    async def run(self, until: asyncio.Event):
        while not until.is_set():
            running, starting = await asyncio.to_thread(replica_counts)
            self.timeline.append((round(time.perf_counter() - self.t0, 1), running, starting))
            await asyncio.sleep(self.period_s)

    def seen(self, since: float, until: float) -> dict:
        window = [(running, starting) for t, running, starting in self.timeline if since <= t <= until]
        return {"running": sorted({r for r, _ in window}), "max_starting": max((s for _, s in window), default=0)}


async def load(url: str, body: dict, concurrency: int, total: int) -> dict:
    """`total` requests from `concurrency` client loops; each loop takes the next request until none is left."""
    import httpx

    latencies, server_ms, statuses = [], [], collections.Counter()
    remaining = iter(range(total))

    async def loop(client: httpx.AsyncClient):
        for _ in remaining:  # shared iterator: bounded, no request issued twice
            started = time.perf_counter()
            try:
                response = await client.post("/v1/score", json=body)
                statuses[str(response.status_code)] += 1
                if response.status_code == 200:
                    latencies.append(1000 * (time.perf_counter() - started))
                    server_ms.append(response.json()["latency_ms"])
            except httpx.HTTPError as error:
                statuses[f"client:{type(error).__name__}"] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await asyncio.gather(*(loop(client) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": total, "seconds": round(seconds, 2),
            "rps": round(total / seconds, 2), "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1), "server_p50_ms": round(percentile(server_ms, 50), 1),
            "statuses": dict(statuses), "errors": sum(n for s, n in statuses.items() if s != "200")}


async def sweep(url: str, body: dict, levels: list[int], total: int, minimum: int, idle_timeout_s: float) -> dict:
    t0 = time.perf_counter()
    watch, done = ReplicaWatch(t0), asyncio.Event()
    watcher = asyncio.create_task(watch.run(done))
    rows = []
    for concurrency in levels:
        since = time.perf_counter() - t0
        row = await load(url, body, concurrency, total)
        row["replicas_seen"] = watch.seen(since, time.perf_counter() - t0)
        rows.append(row)
        print(f"  concurrency {concurrency}: p50 {row['p50_ms']} ms, {row['rps']} req/s, "
              f"replicas {row['replicas_seen']}", flush=True)
    idle_from = time.perf_counter() - t0
    while time.perf_counter() - t0 - idle_from < idle_timeout_s:
        if watch.timeline and watch.timeline[-1][0] > idle_from and watch.timeline[-1][1:] == (minimum, 0):
            break
        await asyncio.sleep(1.0)
    done.set()
    await watcher
    back = next((t for t, running, starting in watch.timeline if t > idle_from and (running, starting) == (minimum, 0)),
                None)
    return {"rows": rows, "replica_timeline": watch.timeline, "idle_from_s": round(idle_from, 1),
            "back_to_min_after_s": None if back is None else round(back - idle_from, 1)}


def table(result: dict) -> str:
    lines = ["| concurrency | requests | p50 ms | p99 ms | server p50 ms | req/s | errors | replicas running "
             "| max starting |", "|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for r in result["sweep"]["rows"]:
        errors = ", ".join(f"{s}: {n}" for s, n in r["statuses"].items() if s != "200") or "0"
        lines.append(f"| {r['concurrency']} | {r['requests']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_p50_ms']} "
                     f"| {r['rps']} | {errors} | {r['replicas_seen']['running']} "
                     f"| {r['replicas_seen']['max_starting']} |")
    c = result["serve_vs_direct"]
    lines.append(f"\ninterleaved at concurrency 1: direct engine call p50 {c['direct']['p50_ms']} ms, Serve p50 "
                 f"{c['serve']['p50_ms']} ms (server side {c['serve_server_side']['p50_ms']} ms): "
                 f"Serve / direct = {c['serve_over_direct_p50']} (goal <= 1.1)")
    lines.append(f"replicas back to min {result['config']['min_replicas']} "
                 f"{result['sweep']['back_to_min_after_s']} s after the load stopped")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=1000, help="per concurrency level")
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--target-ongoing", type=float, default=4.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=10, help="alternating direct/Serve blocks")
    parser.add_argument("--block-calls", type=int, default=10)
    parser.add_argument("--idle-timeout", type=float, default=180.0, help="seconds to wait for the scale-down")
    parser.add_argument("--model", default="", help="model dir (default: the tiny model, built once)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    use_local_env()
    from ray import serve

    from cluster.config import ClusterConfig, QThinkConfig, RolloutConfig, ServeConfig
    from cluster.serve import start
    from rollout.demo.tiny_model import ensure_tiny_model

    model_dir = args.model or str(ensure_tiny_model(Path(tempfile.gettempdir()) / "qthink-serve-load-tiny"))
    port = free_port()
    serve_cfg = ServeConfig(min_replicas=1, max_replicas=args.max_replicas, target_ongoing_requests=args.target_ongoing,
                            upscale_delay_s=2.0, downscale_delay_s=10.0, look_back_period_s=5.0, port=port)
    cfg = QThinkConfig(rollout=RolloutConfig(max_tokens=args.max_tokens, max_model_len=1024), serve=serve_cfg)
    init_ray(ClusterConfig(num_cpus=max(2, args.max_replicas)))
    png, described = test_png(), machine("torch", "vllm", "ray")
    print("starting Serve ...", flush=True)
    url = start(model_dir, cfg)
    body = {"image": base64.b64encode(png).decode(), "samples": 1}
    try:
        print(f"Serve vs direct engine, {args.blocks} x {args.block_calls} calls each ...", flush=True)
        versus = serve_vs_direct(model_dir, cfg, url, png, args.blocks, args.block_calls)
        result_sweep = asyncio.run(sweep(url, body, args.concurrency, args.requests, serve_cfg.min_replicas,
                                         args.idle_timeout))
    finally:
        serve.shutdown()
    result = {
        "machine": described,
        "config": {"model": model_dir, "max_tokens": args.max_tokens,
                   "request": "POST /v1/score, 112x112 PNG as base64 JSON, samples=1 (greedy)",
                   **{k: v for k, v in dataclasses.asdict(serve_cfg).items() if k in (
                       "min_replicas", "max_replicas", "target_ongoing_requests", "max_ongoing_requests",
                       "upscale_delay_s", "downscale_delay_s", "look_back_period_s", "cpus_per_replica")}},
        "serve_vs_direct": versus,
        "sweep": result_sweep,
        "load_avg_at_end": os.getloadavg(),
    }
    print(table(result))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
