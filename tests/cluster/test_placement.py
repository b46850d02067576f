"""Placement groups on a real local Ray: what fits is reserved, what cannot fit fails at once by name."""

import time

import pytest
import ray

from cluster.config import PlacementError, load_config
from cluster.placement import check_cluster_holds, in_bundle, reserve


def test_a_config_the_cluster_cannot_hold_fails_in_seconds_naming_both_sides(ray_local):
    started = time.perf_counter()
    for overrides, words in ((["rollout.gpus_per_worker=1"], ["rollout 1 x {'CPU': 1, 'GPU': 1}", "CPU 2"]),
                             (["cluster.role_resources.rollout.rollout_node=1"],  # no node declares it
                              ["rollout 1 x {'CPU': 1, 'rollout_node': 1.0}"]),
                             (["learner.num_ranks=4"], ["learner 4 x {'CPU': 1}"]),
                             (["learner.cpus_per_rank=3"], ["learner 2 x {'CPU': 3}"])):
        with pytest.raises(PlacementError) as refused:
            check_cluster_holds(load_config(None, overrides))
        assert all(word in str(refused.value) for word in words), str(refused.value)
        with pytest.raises(PlacementError, match="cannot hold"):
            reserve("learner" if "learner" in overrides[0] else "rollout", load_config(None, overrides))
    assert time.perf_counter() - started < 10


def test_roles_land_in_their_bundles_and_a_busy_cluster_times_out_with_what_is_free(ray_local):
    cfg = load_config(None, ["learner.num_ranks=2", "cluster.placement_timeout_s=2"])
    learner = reserve("learner", cfg)

    @ray.remote(num_cpus=1)
    def where() -> str:
        return ray.get_runtime_context().get_placement_group_id()

    assert ray.get(where.options(**in_bundle(learner, 1)).remote()) == learner.id.hex()
    with pytest.raises(PlacementError, match="not placed within 2 s; free now"):
        reserve("reward", cfg)  # both CPUs are the learner's now
    ray.util.remove_placement_group(learner)
    reward = reserve("reward", cfg)  # free again: placed
    ray.util.remove_placement_group(reward)  # the session's other tests need both CPUs
