"""The pool's scheduling with time-modelled workers (the engine is not what these tests are about)."""

import os
import threading
import time

import pytest
import ray

from actors.dispatch import PoisonTaskError
from actors.learner import LearnerGroup
from actors.rollout_worker import RolloutPool, WeightSyncError
from actors.simulated_rollout_worker import ModelessReceiver, SimulatedRolloutWorker
from learners.config import LearnerConfig
from rollout.records import RolloutRequest, RolloutSample


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


@pytest.fixture(scope="module")
def learner(ray_local, tiny_model_dir):
    """A real learner rank: what the pool syncs from (its weights travel to workers that load them nowhere)."""
    group = LearnerGroup(str(tiny_model_dir), LearnerConfig(num_ranks=1, beta=0.0), max_tokens=8)
    yield group
    for rank in group.ranks:
        ray.kill(rank)


def test_a_worker_replaced_while_the_learner_steps_waits_for_the_step_and_gets_the_weights_it_made(
        learner, tiny_model_dir):
    """One-step-off: step t+1's rollout runs while the learner takes step t. A worker that dies in it is
    replaced; its weights come after that step, whose time does not count against the sync's deadline, and
    carry the version that step made (they used to be labelled one version old, and a step longer than
    `sync_timeout_s` failed the rollout)."""
    from learner_batch import grpo_batch

    _, seqs, media = grpo_batch(tiny_model_dir)
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(2e-3, 8, 2), 1, sync_timeout_s=8)
    pool.broadcast_weights(learner, version=7)
    started = threading.Event()

    def long_step():  # a real update, then longer than a sync may take, still inside the step
        with learner.stepping:
            started.set()
            learner.train_step(seqs, media)
            time.sleep(12)

    stepping = threading.Thread(target=long_step)
    stepping.start()
    started.wait()
    ray.kill(pool.workers[0])
    groups = pool.generate(_requests(4))
    stepping.join()
    assert pool.restarts == 1
    assert {s.policy_version for g in groups for s in g} == {8}
    pool.broadcast_weights(learner, version=8)  # the driver's sync after the step: the same version for all
    assert {s.policy_version for g in pool.generate(_requests(2)) for s in g} == {8}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_worker_is_replaced_in_a_rebuilt_group_with_the_latest_weights(learner, workers):
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(2e-3, 8, 2), workers, chunks_per_worker=2)
    pool.broadcast_weights(learner, version=3)
    ray.kill(pool.workers[0])  # dies before (and so during) its first chunk
    groups = pool.generate(_requests(8))
    assert [g[0].prompt_id for g in groups] == [f"p{i}" for i in range(8)]
    assert pool.restarts == 1
    assert {s.policy_version for g in groups for s in g} == {3}  # the replacement got the latest weights
    pool.broadcast_weights(learner, version=4)  # the rebuilt group holds the new worker and the old one
    assert {s.policy_version for g in pool.generate(_requests(4)) for s in g} == {4}


def test_a_worker_replaced_mid_rollout_gets_the_weights_without_waiting_for_the_busy_ones(learner):
    """Worker 1 is in a chunk for longer than a sync may take; worker 0 dies. Its replacement gets the weights
    through a group of its own: a group with worker 1 in it would wait for the chunk to end, time out and
    (before this was fixed) fail the rollout with a WeightSyncError naming the healthy worker."""
    speeds = [1e-3, 1.5]  # worker 1's chunk: 1 request x 2 samples x 8 tokens x 1.5 s = 24 s
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(speeds[i], 8, 2), 2, sync_timeout_s=10)
    pool.broadcast_weights(learner, version=5)
    ray.kill(pool.workers[0])
    groups = pool.generate(_requests(2))
    assert [g[0].prompt_id for g in groups] == ["p0", "p1"]
    assert pool.restarts == 1
    assert {s.policy_version for g in groups for s in g} == {5}
    pool.broadcast_weights(learner, version=6)  # one group for both again
    assert {s.policy_version for g in pool.generate(_requests(2), max_tokens=1) for s in g} == {6}


def test_sync_to_a_dead_worker_fails_loudly_naming_it(learner):
    pool = RolloutPool(lambda i: SimulatedRolloutWorker.remote(1e-4, 8, 2), 2, sync_timeout_s=20)
    pool.broadcast_weights(learner, version=1)
    ray.kill(pool.workers[1])
    start = time.monotonic()
    with pytest.raises(WeightSyncError, match="weight sync v2: rollout worker 1 died"):
        pool.broadcast_weights(learner, version=2)
    assert time.monotonic() - start < 20


def test_a_worker_stuck_in_a_sync_fails_it_within_the_deadline_and_the_next_sync_rebuilds(learner):
    """vLLM's own NCCL path has no deadline; here every phase has one, the stuck worker is replaced, and the
    learner is not left blocked."""
    pool = RolloutPool(lambda i: FaultyWorker.remote(stuck_at_version=2) if i == 1 else
                       SimulatedRolloutWorker.remote(1e-4, 8, 2), 2, sync_timeout_s=8)
    pool.broadcast_weights(learner, version=1)
    start = time.monotonic()
    late = r"weight sync v2: rollout worker 1(, learner rank 0)? did not finish within 8s"
    with pytest.raises(WeightSyncError, match=late):
        pool.broadcast_weights(learner, version=2)
    assert time.monotonic() - start < 8 + 4
    assert pool.restarts == 1
    pool.broadcast_weights(learner, version=3)  # a new group with the replacement, and this one goes through
    assert {s.policy_version for g in pool.generate(_requests(4)) for s in g} == {3}


def test_engines_still_starting_are_waited_for_before_a_syncs_deadline_starts(learner):
    """A resumed run syncs right after creating its engines, which take minutes to start for a large model on
    GPUs: that start used to count against `sync_timeout_s` and fail the resume."""
    pool = RolloutPool(lambda i: FaultyWorker.remote(starts_in_s=12), 2, sync_timeout_s=8)
    pool.broadcast_weights(learner, version=1)
    assert {s.policy_version for g in pool.generate(_requests(4)) for s in g} == {1}


def test_a_worker_killed_inside_a_sync_fails_it_naming_the_worker_and_the_next_sync_goes_through(learner):
    pool = RolloutPool(lambda i: FaultyWorker.remote(dies_at_version=2) if i == 0 else
                       SimulatedRolloutWorker.remote(1e-4, 8, 2), 2, sync_timeout_s=15)
    pool.broadcast_weights(learner, version=1)
    start = time.monotonic()
    with pytest.raises(WeightSyncError, match=r"weight sync v2: .*rollout worker 0 died"):
        pool.broadcast_weights(learner, version=2)
    assert time.monotonic() - start < 15 + 4
    pool.broadcast_weights(learner, version=3)  # the replacement (which dies only at v2) joins a new group
    assert {s.policy_version for g in pool.generate(_requests(4)) for s in g} == {3}


@ray.remote(num_cpus=0)
class FaultyWorker(ModelessReceiver):
    """Returns one sample per request at once, except: a chunk holding the prompt `poison` kills its worker
    (every time); the first call that finds no `marker` file hangs (once: a hung engine), as does the weight
    sync to `stuck_at_version`; it dies inside the sync to `dies_at_version`; it takes `starts_in_s` to start."""

    def __init__(self, marker: str = "", stuck_at_version: int = -1, dies_at_version: int = -1,
                 starts_in_s: float = 0.0):
        self.marker, self.stuck_at_version, self.dies_at_version = marker, stuck_at_version, dies_at_version
        time.sleep(starts_in_s)

    def generate(self, requests, n=None, **overrides):
        if any(r.prompt_id == "poison" for r in requests):
            os._exit(1)
        if self.marker and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            time.sleep(3600)
        version = getattr(self, "version", 0)
        return [[RolloutSample(r.prompt_id, [0], [1], [-1.0], variant=r.variant, policy_version=version)]
                for r in requests]

    def pid(self):
        return os.getpid()

    def receive_weights(self, update_info, version):
        if version == self.stuck_at_version:  # never joins the broadcast: a stuck engine
            time.sleep(3600)
        if version == self.dies_at_version:  # in the group, inside the sync: killed. Its sockets close a second
            self.group.close()  # before Ray sees the death (as on a loaded machine): the learner's send
            time.sleep(1)  # fails first, and the error must still name the dead worker
            os._exit(1)
        return super().receive_weights(update_info, version)


def test_a_chunk_that_kills_every_worker_fails_the_call_after_the_restart_cap(ray_local):
    pool = RolloutPool(lambda i: FaultyWorker.remote(), 2, chunks_per_worker=2, max_restarts=2)
    requests = _requests(6) + [RolloutRequest("poison", "image")] + _requests(1)
    with pytest.raises(PoisonTaskError, match="rollout chunk 3 killed its worker on 3 workers"):
        pool.generate(requests)
    assert pool.restarts == 2  # the first death and 2 restarts; no restart after the cap
    assert [g[0].prompt_id for g in pool.generate(_requests(4))] == [f"p{i}" for i in range(4)]  # pool still works


def test_a_hung_worker_is_replaced_after_the_deadline_and_its_chunk_rerun(ray_local, tmp_path):
    marker = str(tmp_path / "hung")
    pool = RolloutPool(lambda i: FaultyWorker.remote(marker), 2, call_timeout_s=10)
    ray.get([w.pid.remote() for w in pool.workers])  # both up: a slow start on a loaded machine is not a hang
    start = time.monotonic()
    groups = pool.generate(_requests(8))
    assert [g[0].prompt_id for g in groups] == [f"p{i}" for i in range(8)]
    assert pool.restarts == 1 and os.path.exists(marker)
    assert 10 <= time.monotonic() - start < 90
