"""Hand tasks to a pool of Ray actors, replace a worker that dies or hangs, and re-run its task.

The rollout and reward pools share this loop. Two limits keep it from waiting forever: a task that has
taken down its worker `max_restarts` times is a poison task (an input that kills the engine every time)
and fails the call, naming it, instead of restarting workers in a loop; and a call that neither returns
nor dies within `deadline_s` (a hung engine) counts as a death: its worker is killed and replaced and the
task re-run. Workers are interchangeable: an idle worker takes the next task (with more tasks than
workers, a fast worker takes more of them).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import ray
from ray.exceptions import RayActorError


class PoisonTaskError(RuntimeError):
    """A task whose every attempt killed or hung its worker."""


def dispatch(workers: list, tasks: list, call: Callable, replace: Callable[[int], None], max_restarts: int,
             deadline_s: float | None = None, what: str = "task") -> list:
    """`call(worker, task)` -> ObjectRef, for every task; results in task order. `replace(i)` puts a fresh
    actor at `workers[i]` (the caller re-applies whatever state it needs, e.g. the latest weights)."""
    results: list = [None] * len(tasks)
    failures = [0] * len(tasks)
    queue, idle = deque(range(len(tasks))), deque(range(len(workers)))
    running: dict[ray.ObjectRef, tuple[int, int, float]] = {}  # ref -> (worker, task, started)

    def fail(worker: int, task: int, why: str) -> None:
        failures[task] += 1
        if failures[task] > max_restarts:
            raise PoisonTaskError(f"{what} {task} {why} on {failures[task]} workers in a row (the limit is "
                                  f"{max_restarts} restarts): the input itself is the likely cause")
        try:
            ray.kill(workers[worker])
        except Exception:  # already gone
            pass
        replace(worker)
        queue.appendleft(task)

    while queue or running:
        while queue and idle:
            w, t = idle.popleft(), queue.popleft()
            running[call(workers[w], tasks[t])] = (w, t, time.monotonic())
        timeout = None
        if deadline_s is not None:
            timeout = max(0.0, min(start for _, _, start in running.values()) + deadline_s - time.monotonic())
        done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
        if not done:  # the oldest call ran past its deadline
            ref = min(running, key=lambda r: running[r][2])
            w, t, _ = running.pop(ref)
            fail(w, t, f"did not finish within {deadline_s:.0f} s")
            idle.append(w)
            continue
        w, t, _ = running.pop(done[0])
        try:
            results[t] = ray.get(done[0])
        except RayActorError:
            fail(w, t, "killed its worker")
        idle.append(w)
    return results
