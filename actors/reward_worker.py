"""Reward workers: the per-response reward work of a batch, spread over N Ray actors.

`RewardWorker` is the actor body: it parses and scores the per-response components of one shard by
delegating to `rewards.score_responses`. `RewardPool` cuts a batch into one contiguous shard per worker,
gathers the shards in batch order (whatever order they finish in), then computes the components that
compare responses (ranks, pair, triplet, balance, group rank, temporal) on the whole gathered batch with
`rewards.score_gathered`, so the result is identical for any number of workers. A worker that dies
mid-batch (killed, crashed, its node lost) is replaced by a fresh one and its shard is re-run.
"""

from __future__ import annotations

import numpy as np
import ray
from ray.exceptions import RayActorError

from rewards import DEFAULT_PRESET, BatchRewards, ResponseScores, score_gathered, score_responses


class RewardWorker:
    """Ray actor body (started by `RewardPool`): one shard's parsing and per-response components."""

    def score_responses(self, preset: str, responses: list[str], mos: np.ndarray) -> ResponseScores:
        return score_responses(preset, responses, mos)


class RewardPool:
    """N reward workers scoring batches for one preset configuration.

    `worker_options` go to `ray.remote(...).options` (e.g. {"num_cpus": 0.5}); `worker_cls` lets a test
    substitute a faulty worker. A shard is re-run on a replacement worker at most `max_restarts` times.
    `group_size` (G) keeps a prompt drawn twice in a row two groups (rewards.group_layout).
    """

    def __init__(
        self,
        num_workers: int,
        preset: str = DEFAULT_PRESET,
        weights: dict | None = None,
        scope: int | None = None,
        worker_options: dict | None = None,
        worker_cls: type = RewardWorker,
        max_restarts: int = 3,
        group_size: int | None = None,
    ):
        if num_workers < 1:
            raise ValueError("a reward pool needs at least one worker")
        self.preset, self.weights, self.scope, self.max_restarts = preset, weights, scope, max_restarts
        self.group_size = group_size
        self._actor_cls = ray.remote(worker_cls).options(**{"num_cpus": 1, **(worker_options or {})})
        self.workers = [self._actor_cls.remote() for _ in range(num_workers)]

    def score(
        self, responses: list[str], mos, prompt_ids: list, variants: list[str] | None = None
    ) -> BatchRewards:
        mos = np.asarray(mos, dtype=np.float64)
        bounds = np.linspace(0, len(responses), len(self.workers) + 1).astype(int)
        shards = list(zip(bounds[:-1], bounds[1:], strict=True))
        restarts = [0] * len(shards)

        def submit(k: int):
            start, stop = shards[k]
            return self.workers[k].score_responses.remote(
                self.preset, list(responses[start:stop]), mos[start:stop]
            )

        pending = {submit(k): k for k in range(len(shards))}
        results: list[ResponseScores | None] = [None] * len(shards)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready)
            try:
                results[k] = ray.get(ready)
            except RayActorError:
                restarts[k] += 1
                if restarts[k] > self.max_restarts:
                    raise
                self.workers[k] = self._actor_cls.remote()
                pending[submit(k)] = k
        return score_gathered(
            self.preset,
            responses,
            ResponseScores.concat(results),
            mos,
            prompt_ids,
            variants,
            self.weights,
            self.scope,
            self.group_size,
        )

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
