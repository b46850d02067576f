"""Which actor runs where: rollout engines, learner ranks and reward workers from the config.

Locally (CPU) every engine gets its own core list for vLLM's OpenMP threads (with the default "auto"
binding every engine picks the same cores) and Ray is told about as many logical CPUs as the roles ask
for: the roles take turns on the cores in synchronous mode, so oversubscribing the count costs nothing.
On GPUs each rollout worker holds `tensor_parallel_size` GPUs and each learner rank one.
"""

from __future__ import annotations

import os

from actors.learner import LearnerGroup
from actors.reward_worker import RewardPool
from actors.rollout_worker import RolloutPool, RolloutWorker
from cluster.config import ENGINE_DTYPE, QThinkConfig
from rewards import Preset


def logical_cpus_needed(cfg: QThinkConfig) -> int:
    r, learner, w = cfg.rollout, cfg.learner, cfg.reward
    return r.num_workers * r.cpus_per_worker + learner.num_ranks * learner.cpus_per_rank + w.num_workers


def rollout_pool(cfg: QThinkConfig, model_dir: str) -> RolloutPool:
    r = cfg.rollout
    dtype = ENGINE_DTYPE[cfg.model.dtype]
    cores = os.cpu_count() or 1

    def make(i: int):
        if r.gpus_per_worker:
            options = {"num_cpus": r.cpus_per_worker, "num_gpus": r.gpus_per_worker * r.tensor_parallel_size}
            return RolloutWorker.options(**options).remote(model_dir, r, dtype)
        first = (i * r.cpus_per_worker) % cores
        cpu_ids = ",".join(str((first + k) % cores) for k in range(r.cpus_per_worker))
        return RolloutWorker.options(num_cpus=r.cpus_per_worker).remote(model_dir, r, dtype, cpu_ids)

    return RolloutPool(make, r.num_workers, r.chunks_per_worker, r.sync_timeout_s, r.max_restarts, r.call_timeout_s)


def learner_group(cfg: QThinkConfig, model_dir: str) -> LearnerGroup:
    return LearnerGroup(model_dir, cfg.learner, max_tokens=cfg.rollout.max_tokens, temperature=cfg.rollout.temperature)


def reward_pool(cfg: QThinkConfig, preset: Preset) -> RewardPool:
    w = cfg.reward
    weights = {**{name: 1.0 for name in w.custom}, **w.weights}
    scope = None if w.rank_scope == "global" else w.rank_slice
    return RewardPool(w.num_workers, preset, weights=weights or None, scope=scope,
                      worker_options={"num_cpus": 1}, max_restarts=w.max_restarts, group_size=cfg.rollout.n,
                      call_timeout_s=w.call_timeout_s)
