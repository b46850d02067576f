"""The pool's scheduling with time-modelled workers (the engine is not what these tests are about)."""

import ray

from actors.rollout_worker import RolloutPool, WeightSyncError
from actors.simulated_rollout_worker import SimulatedRolloutWorker
from rollout.engine import RolloutRequest


def _requests(k):
    return [RolloutRequest(f"p{i}", "image") for i in range(k)]


def test_results_come_back_in_input_order_and_faster_workers_take_more_chunks(ray_local):
    speeds = [5e-4, 5e-3]  # worker 0 is 10x faster than worker 1 (16 ms vs 160 ms per chunk)
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(speeds[i], 8, 2), 2, chunks_per_worker=8)
    groups = pool.generate(_requests(32))
    assert [g[0].prompt_id for g in groups] == [f"p{i}" for i in range(32)]
    assert all(len(g) == 2 for g in groups)
    fast, slow = ray.get([w.chunks_done.remote() for w in pool.workers])
    assert fast + slow == 16
    assert fast > slow


def test_a_killed_worker_is_replaced_and_its_chunk_rerun(ray_local):
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(2e-3, 8, 2), 2, chunks_per_worker=2)
    pool.broadcast_weights(b"w" * 10, version=3)
    ray.kill(pool.workers[0])  # dies before (and so during) its first chunk
    groups = pool.generate(_requests(8))
    assert [g[0].prompt_id for g in groups] == [f"p{i}" for i in range(8)]
    assert pool.restarts == 1
    assert {s.policy_version for g in groups for s in g} == {3}  # the replacement got the latest weights


def test_sync_to_a_dead_worker_fails_loudly_instead_of_hanging(ray_local):
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(1e-4, 8, 2), 2, sync_timeout_s=20)
    ray.kill(pool.workers[1])
    try:
        pool.broadcast_weights(b"w", version=1)
    except WeightSyncError as e:
        assert "died" in str(e)
    else:
        raise AssertionError("sync to a dead worker did not fail")
