"""Rollout as Ray actors: one vLLM engine per `RolloutWorker`, and a `RolloutPool` that feeds them.

The pool hands out chunks through `actors.dispatch`: a faster worker takes more of them, results come
back in input order, and a worker that dies or hangs is replaced (with the latest weights re-applied) and
its chunk re-run, so no prompt is lost; a chunk that takes down `max_restarts` workers in a row fails the
call.

Weight sync goes through vLLM's weight-transfer protocol: learner rank 0 and every engine's ranks form one
group (engine i's first rank is 1 + i x TP), and learner rank 0 broadcasts the weights over it while each
engine runs start/update/finish. Only the bucket plan (names, dtypes, shapes) passes through the driver.
A sync (building the group included) that does not finish within `sync_timeout_s` (a dead or stuck peer)
raises `WeightSyncError`; the group's own timeout is the same, so no member stays blocked past it. A worker
replaced during a rollout cannot join the old group, and the others may be mid-chunk: the current weights go
to it alone, through a group of its own, and the next sync builds one for everyone.

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
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from actors.dispatch import dispatch
from actors.media import fetched
from rollout.config import RolloutConfig
from rollout.engine import RolloutEngine
from rollout.records import RequestRef, RolloutRequest, RolloutSample

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
        elif config.tensor_parallel_size > 1:
            # vLLM's Ray executor must start in this actor's process: there the current placement group is this
            # engine's, and its ranks go into its bundles (an engine-core subprocess would make a group of its own).
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        torch.set_num_threads(max(1, config.cpus_per_worker))
        self.orphan_watch = subprocess.Popen([sys.executable, "-c", ORPHAN_WATCH])
        self.engine = RolloutEngine(model_dir, config, dtype)

    def generate(self, requests: list[RolloutRequest | RequestRef], n: int | None = None,
                 **overrides) -> list[list[RolloutSample]]:
        return self.engine.generate(fetched(requests), n, **overrides)

    def init_weight_transfer(self, init_info: dict) -> None:
        self.engine.init_weight_transfer(init_info, timeout_s=init_info["timeout_s"])

    def close_weight_transfer(self) -> None:
        self.engine.close_weight_transfer()

    def receive_weights(self, update_info: dict, version: int) -> None:
        self.engine.receive_weights(update_info, version, timeout_s=self.engine.config.sync_timeout_s)

    def pid(self) -> int:
        return os.getpid()


def _succeeded(ref: ray.ObjectRef) -> bool:
    try:
        ray.get(ref, timeout=0)
        return True
    except RayError:
        return False


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
                 call_timeout_s: float | None = None, tensor_parallel_size: int = 1, sync_bucket_mb: int = 256):
        self.make_worker = make_worker
        self.workers = [make_worker(i) for i in range(num_workers)]
        self.chunks_per_worker, self.tensor_parallel_size = chunks_per_worker, tensor_parallel_size
        self.sync_timeout_s, self.call_timeout_s, self.max_restarts = sync_timeout_s, call_timeout_s, max_restarts
        self.sync_bucket_bytes = sync_bucket_mb << 20
        self.learner, self.version = None, None  # where weights come from, and the version the workers hold
        self.synced_steps = 0  # the learner's step count at the last sync
        self.members: list[int] | None = None  # the workers in the live transfer group (None: no group)
        self.update_info: dict | None = None  # its bucket plan
        self.restarts = 0

    def _replace(self, i: int) -> None:
        """A fresh actor in slot i. It is in no group: the live one, if it held slot i, is void."""
        try:
            ray.kill(self.workers[i])
        except RayError:  # already gone
            pass
        self.workers[i] = self.make_worker(i)
        self.restarts += 1
        if self.members is not None and i in self.members:
            self.members = None

    def _restart(self, i: int) -> None:
        """Worker i died or hung during a rollout: a new one, up first (an engine starts in a minute or so, which
        must not eat a sync's deadline), then the current weights, sent to it alone. The other workers may be
        in the middle of their chunks; a group with them would wait for those to end."""
        for _ in range(self.max_restarts + 1):
            self._replace(i)
            try:
                ray.get(self.workers[i].pid.remote(), timeout=self.call_timeout_s)
                break
            except RayActorError:  # died while starting (its node is going away too): place another
                continue
        if self.learner is not None:
            self._sync(self.learner, None, [i])

    def chunk_size(self, num_requests: int) -> int:
        return max(1, math.ceil(num_requests / (len(self.workers) * self.chunks_per_worker)))

    def generate(self, requests: list[RolloutRequest | RequestRef], n: int | None = None,
                 **overrides) -> list[list[RolloutSample]]:
        if not requests:
            return []
        size = self.chunk_size(len(requests))
        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        results = dispatch(self.workers, chunks, lambda worker, chunk: worker.generate.remote(chunk, n, **overrides),
                           self._restart, self.max_restarts, self.call_timeout_s, what="rollout chunk")
        return [group for chunk in results for group in chunk]

    def broadcast_weights(self, learner, version: int) -> float:
        """Every worker receives the learner's current weights, tagged `version`; returns seconds. Raises
        WeightSyncError on a timeout, a dead worker or learner rank, or a failed transfer."""
        return self._sync(learner, version, list(range(len(self.workers))))

    def _sync(self, learner, version: int | None, members: list[int]) -> float:
        """The weights to workers `members`, through a group of exactly them (built anew when the live group
        has other members), all within one `sync_timeout_s`. Outside that deadline, first: engines still starting,
        and a learner step under way in another thread (the one-step-off driver's; the sync's calls would queue
        behind it anyway).
        `version` None: the weights the learner holds then, one version past the last sync per step since."""
        with learner.stepping:
            if version is None:
                version = self.version + learner.steps - self.synced_steps
            seconds = self._transfer(learner, version, members)
            self.synced_steps = learner.steps
            return seconds

    def _transfer(self, learner, version: int, members: list[int]) -> float:
        what = f"weight sync v{version}"
        # Engines still starting (a fresh pool, a resumed run: minutes for a large model on GPUs) are waited for
        # first, as long as a rollout call may take: their start must not count against the sync's deadline.
        pending = {self.workers[i].pid.remote(): i for i in members}  # the members' calls: failed ones are replaced
        try:
            limit = self.call_timeout_s
            self._wait({ref: f"rollout worker {i}" for ref, i in pending.items()}, what,
                       None if limit is None else time.monotonic() + limit, limit)
            start = time.perf_counter()
            deadline = time.monotonic() + self.sync_timeout_s
            if self.members != members:
                self._connect(learner, members, deadline)
            pending = {self.workers[i].receive_weights.remote(self.update_info, version): i for i in members}
            calls = {ref: f"rollout worker {i}" for ref, i in pending.items()}
            calls.update({r.send_weights.remote(): f"learner rank {k}" for k, r in enumerate(learner.ranks)})
            self._wait(calls, what, deadline)
        except WeightSyncError:
            # The group is unusable, and so is an engine left dead, stuck or in a half-finished update: those
            # are replaced now, and the next sync builds a new group.
            self.members = None
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref, i in pending.items():
                if ref not in done or not _succeeded(ref):
                    self._replace(i)
            raise
        self.learner, self.version = learner, version
        return time.perf_counter() - start

    def _connect(self, learner, members: list[int], deadline: float) -> None:
        """One group: learner rank 0 at rank 0, the k-th member's engine ranks from 1 + k x TP (vLLM's own
        trainer side gives every engine offset 1, which only works for a single engine)."""
        ranks, tp = learner.ranks, self.tensor_parallel_size
        if self.learner is not None:  # members of an old group leave it first (a fresh worker has none)
            self._wait({self.workers[i].close_weight_transfer.remote(): f"rollout worker {i}" for i in members},
                       "leaving the old weight-transfer group", deadline)
        # every rank plans the same buckets (ZeRO-3 gathers follow them)
        plans = {r.weight_update_info.remote(self.sync_bucket_bytes): f"learner rank {k}" for k, r in enumerate(ranks)}
        where = ranks[0].master_address.remote()
        self._wait({**plans, where: "learner rank 0"}, "weight-transfer plan", deadline)
        (address, port), world, timeout = ray.get(where), 1 + len(members) * tp, self.sync_timeout_s
        calls = {ranks[0].connect_weight_sender.remote(address, port, world, timeout): "learner rank 0"}
        calls.update({self.workers[i].init_weight_transfer.remote(dict(
            master_address=address, master_port=port, rank_offset=1 + k * tp, world_size=world, timeout_s=timeout)):
            f"rollout worker {i}" for k, i in enumerate(members)})
        self._wait(calls, "weight-transfer group", deadline)
        self.learner, self.members, self.update_info = learner, members, ray.get(next(iter(plans)))

    def _wait(self, calls: dict, what: str, deadline: float | None, limit_s: float | None = None) -> None:
        """All `calls` by `deadline` (None: no deadline; `limit_s`, default `sync_timeout_s`, names it)."""
        try:
            ray.get(list(calls), timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except GetTimeoutError as e:
            done, _ = ray.wait(list(calls), num_returns=len(calls), timeout=0)
            late = [name for ref, name in calls.items() if ref not in done]
            limit_s = self.sync_timeout_s if limit_s is None else limit_s
            raise WeightSyncError(f"{what}: {', '.join(late)} did not finish within {limit_s:.0f}s") from e
        except (RayActorError, RayTaskError) as e:
            # A member that dies mid-transfer resets its peers' sockets; their errors often reach us before Ray
            # has noticed the death. Give the rest a few seconds to settle so the cause is named, dead first.
            done, _ = ray.wait(list(calls), num_returns=len(calls), timeout=min(5.0, self.sync_timeout_s))
            died, failed = [], []
            for ref in done:
                try:
                    ray.get(ref)
                except RayActorError:
                    died.append(f"{calls[ref]} died")
                except RayTaskError as err:
                    failed.append(f"{calls[ref]} failed: {err.cause!r}")
            raise WeightSyncError(f"{what}: {'; '.join(died + failed) or e}") from e
