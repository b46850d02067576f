"""Rollout as Ray actors: one vLLM engine per `RolloutWorker`, and a `RolloutPool` that feeds them.

The pool hands out chunks through `actors.dispatch`: a faster worker takes more of them, results come
back in input order, and a worker that dies or hangs is replaced (with the latest weights re-applied) and
its chunk re-run, so no prompt is lost; a chunk that takes down `max_restarts` workers in a row fails the
call. Weight sync puts the blob in the object store ONCE; every worker reads the same object, and a sync
that does not finish within its timeout fails loudly instead of hanging.

Ray ends a dead worker's child processes, but only while its raylet lives: when both die at once (the
driver killed with the Ray head it started), vLLM's engine processes (~2.7 GB for the tiny model) would
run on as orphans — on GPUs, and on CPU before engines ran in-process. Each worker therefore starts a small
watcher in its process group that ends the group once the worker is gone.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import Callable

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors.dispatch import dispatch
from rollout.config import RolloutConfig
from rollout.engine import RolloutEngine
from rollout.records import RolloutRequest, RolloutSample

ORPHAN_WATCH = """
import os, signal, time
worker = os.getppid()
if os.getpgid(0) == worker:  # only where the worker leads its own process group, as Ray starts them
    while os.getppid() == worker:
        time.sleep(1)
    os.killpg(worker, signal.SIGKILL)
"""


@ray.remote
class RolloutWorker:
    def __init__(self, model_dir: str, config: RolloutConfig, dtype: str = "float32", cpu_ids: str = ""):
        import torch

        if cpu_ids:
            # vLLM's OpenMP threads on this worker's cores ("auto" would give every engine the same ones).
            # It does not pin the in-process engine's Python thread; pinning that too did not help (measured,
            # benchmarks/README.md "Rollout throughput").
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_ids
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
            # The engine runs inside this actor: one process instead of three (frontend, EngineCore, Worker)
            # that kept 1.8 cores busy per engine; 2 workers on 2 cores scale 0.81 instead of 0.47 (README).
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        torch.set_num_threads(max(1, config.cpus_per_worker))
        self.orphan_watch = subprocess.Popen([sys.executable, "-c", ORPHAN_WATCH])
        self.engine = RolloutEngine(model_dir, config, dtype)

    def generate(self, requests: list[RolloutRequest], n: int | None = None, **overrides) -> list[list[RolloutSample]]:
        return self.engine.generate(requests, n, **overrides)

    def load_weights(self, blob, version: int) -> int:
        return self.engine.load_weights(blob, version, timeout_s=self.engine.config.sync_timeout_s)

    def pid(self) -> int:
        return os.getpid()


class WeightSyncError(RuntimeError):
    """A weight sync that did not complete on every rollout worker (timeout or a dead worker)."""


class RolloutPool:
    """Dispatch of request chunks over rollout workers, with restart on worker death; with more chunks
    than workers, a worker that finishes takes the next chunk (work stealing).

    `make_worker(i)` creates worker i (a real `RolloutWorker` or, in benchmarks, a simulated one);
    `call_timeout_s`: a generate call that neither returns nor dies within it is a hung engine.
    """

    def __init__(self, make_worker: Callable[[int], "ray.actor.ActorHandle"], num_workers: int,
                 chunks_per_worker: int = 1, sync_timeout_s: float = 120.0, max_restarts: int = 3,
                 call_timeout_s: float | None = None):
        self.make_worker = make_worker
        self.workers = [make_worker(i) for i in range(num_workers)]
        self.chunks_per_worker = chunks_per_worker
        self.sync_timeout_s, self.call_timeout_s, self.max_restarts = sync_timeout_s, call_timeout_s, max_restarts
        self.latest_weights: tuple[ray.ObjectRef, int] | None = None
        self.restarts = 0

    def _restart(self, i: int) -> None:
        self.workers[i] = self.make_worker(i)
        self.restarts += 1
        if self.latest_weights is not None:
            ref, version = self.latest_weights
            ray.get(self.workers[i].load_weights.remote(ref, version), timeout=self.sync_timeout_s)

    def chunk_size(self, num_requests: int) -> int:
        return max(1, math.ceil(num_requests / (len(self.workers) * self.chunks_per_worker)))

    def generate(self, requests: list[RolloutRequest], n: int | None = None, **overrides) -> list[list[RolloutSample]]:
        if not requests:
            return []
        size = self.chunk_size(len(requests))
        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        results = dispatch(self.workers, chunks, lambda worker, chunk: worker.generate.remote(chunk, n, **overrides),
                           self._restart, self.max_restarts, self.call_timeout_s, what="rollout chunk")
        return [group for chunk in results for group in chunk]

    def broadcast_weights(self, blob, version: int) -> float:
        """Every worker reloads `blob` (a safetensors blob, or a reference to one already in the object
        store); returns seconds. Raises WeightSyncError on a timeout or a dead worker."""
        start = time.perf_counter()
        ref = blob if isinstance(blob, ray.ObjectRef) else ray.put(blob)
        calls = {w.load_weights.remote(ref, version): i for i, w in enumerate(self.workers)}
        try:
            ray.get(list(calls), timeout=self.sync_timeout_s)
        except GetTimeoutError as e:
            done, _ = ray.wait(list(calls), num_returns=len(calls), timeout=0)
            late = sorted(i for r, i in calls.items() if r not in done)
            raise WeightSyncError(f"weight sync v{version}: workers {late} did not finish within "
                                  f"{self.sync_timeout_s:.0f}s") from e
        except RayActorError as e:
            raise WeightSyncError(f"weight sync v{version}: a rollout worker died: {e}") from e
        self.latest_weights = (ref, version)
        return time.perf_counter() - start
