"""Reward workers: the per-response reward work of a batch, spread over N Ray actors.

`RewardWorker` is the actor body: it parses and scores the per-response components of one shard by
delegating to `rewards.score_responses`. `RewardPool` cuts a batch into one contiguous shard per worker,
gathers the shards in batch order (whatever order they finish in), then computes the components that
compare responses (ranks, pair, triplet, balance, group rank, temporal) on the whole gathered batch with
`rewards.score_gathered`, so the result is identical for any number of workers. A worker that dies
mid-batch (killed, crashed, its node lost) or hangs is replaced by a fresh one and its shard re-run
(`actors.dispatch`).
"""

from __future__ import annotations

import numpy as np
import ray

from actors.dispatch import dispatch
from rewards import BatchRewards, Preset, ResponseScores, score_gathered, score_responses


class RewardWorker:
    """Ray actor body (started by `RewardPool`): one shard's parsing and per-response components."""

    def __init__(self, preset: Preset):
        self.preset = preset

    def score_responses(self, responses: list[str], mos: np.ndarray) -> ResponseScores:
        return score_responses(self.preset, responses, mos)


class RewardPool:
    """N reward workers scoring batches for one preset configuration.

    `worker_options` go to `ray.remote(...).options` (e.g. {"num_cpus": 0.5}); `worker_cls` lets a test
    substitute a faulty worker. A shard is re-run on a replacement worker at most `max_restarts` times, and a
    call that has not returned within `call_timeout_s` counts as a dead worker.
    `group_size` (G) keeps a prompt drawn twice in a row two groups (rewards.group_layout).
    """

    def __init__(
        self,
        num_workers: int,
        preset: Preset,
        weights: dict | None = None,
        scope: int | None = None,
        worker_options: dict | None = None,
        worker_cls: type = RewardWorker,
        max_restarts: int = 3,
        group_size: int | None = None,
        call_timeout_s: float | None = None,
    ):
        if num_workers < 1:
            raise ValueError("a reward pool needs at least one worker")
        self.preset, self.weights, self.scope, self.max_restarts = preset, weights, scope, max_restarts
        self.group_size, self.call_timeout_s = group_size, call_timeout_s
        self._actor_cls = ray.remote(worker_cls).options(**{"num_cpus": 1, **(worker_options or {})})
        self.workers = [self._actor_cls.remote(preset) for _ in range(num_workers)]

    def score(
        self, responses: list[str], mos, prompt_ids: list, variants: list[str] | None = None
    ) -> BatchRewards:
        mos = np.asarray(mos, dtype=np.float64)
        bounds = np.linspace(0, len(responses), len(self.workers) + 1).astype(int)
        shards = list(zip(bounds[:-1], bounds[1:], strict=True))

        def replace(i: int) -> None:
            self.workers[i] = self._actor_cls.remote(self.preset)

        results = dispatch(self.workers, shards,
                           lambda worker, shard: worker.score_responses.remote(
                               list(responses[shard[0]:shard[1]]), mos[shard[0]:shard[1]]),
                           replace, self.max_restarts, self.call_timeout_s, what="reward shard")
        return score_gathered(self.preset, responses, ResponseScores.concat(results), mos, prompt_ids, variants,
                              self.weights, self.scope, self.group_size)

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
