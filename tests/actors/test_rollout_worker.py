"""Real vLLM-CPU engines inside Ray actors (slow: each engine takes ~20 s to start on 2 cores)."""

import os
import signal
import threading

import numpy as np
import pytest
import ray

from actors.rollout_worker import RolloutPool, RolloutWorker
from rollout.config import RolloutConfig
from rollout.records import RolloutRequest

pytestmark = pytest.mark.slow


def _requests(k):
    rng = np.random.default_rng(0)
    return [RolloutRequest(f"p{i}", "image", image=rng.integers(0, 255, (112, 112, 3), dtype=np.uint8), seed=i)
            for i in range(k)]


@pytest.fixture(scope="module")
def pool(ray_local, tiny_model_dir):
    cfg = RolloutConfig(n=2, max_tokens=16, max_model_len=1024, cpus_per_worker=1)
    return RolloutPool(lambda i: RolloutWorker.options(num_cpus=1).remote(str(tiny_model_dir), cfg, cpu_ids=str(i)),
                       num_workers=2)


def test_tiny_model_generates_inside_ray_actors(pool):
    groups = pool.generate(_requests(4))
    assert [g[0].prompt_id for g in groups] == ["p0", "p1", "p2", "p3"]
    assert all(len(g) == 2 and len(g[0].token_ids) > 0 for g in groups)
    pids = ray.get([w.pid.remote() for w in pool.workers])
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_worker_killed_mid_generation_is_restarted_and_no_prompt_is_lost(pool):
    victim = ray.get(pool.workers[0].pid.remote())
    requests = _requests(32)  # ~2 s of generation per worker: the kill lands while its chunk runs
    timer = threading.Timer(0.5, os.kill, (victim, signal.SIGKILL))
    timer.start()
    groups = pool.generate(requests, max_tokens=400, temperature=1.0)
    timer.join()
    assert [g[0].prompt_id for g in groups] == [r.prompt_id for r in requests]
    assert pool.restarts >= 1
    assert victim not in ray.get([w.pid.remote() for w in pool.workers])
