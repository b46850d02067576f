"""A driver for a Ray cluster whose nodes declare GPUs (none need exist): reserves the rollout engines' groups
as `qthink train` does, starts a stand-in for each rollout worker with the worker's own options, and from
inside it does what vLLM's Ray executor does when a tensor-parallel engine starts: checks the current
placement group with vLLM's own `_verify_bundles`, then starts one rank (holding one GPU) in each GPU bundle.
Prints where everything ran, as JSON. Usage: python engine_placement_probe.py GCS_ADDRESS TP ENGINES"""

import json
import sys
from types import SimpleNamespace

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from cluster.config import PlacementError, load_config
from cluster.placement import reserve_engines, worker_options


@ray.remote
class Rank:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


@ray.remote
class Engine:
    def start(self, tp: int) -> dict:
        from vllm.v1.executor.ray_utils import _verify_bundles

        group = ray.util.get_current_placement_group()
        _verify_bundles(group, SimpleNamespace(tensor_parallel_size=tp), "GPU")
        gpu_bundles = [i for i, b in enumerate(group.bundle_specs) if b.get("GPU", 0)][:tp]  # as vLLM picks them
        self.ranks = [Rank.options(num_cpus=0, num_gpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=i, placement_group_capture_child_tasks=True)).remote()
            for i in gpu_bundles]
        return {"node": ray.get_runtime_context().get_node_id(), "gpu_ids": ray.get_gpu_ids(),
                "bundles": group.bundle_specs, "ranks": ray.get([r.node.remote() for r in self.ranks])}


def main(address: str, tp: int, engines: int) -> None:
    ray.init(address=address)
    cfg = load_config(None, [f"rollout.num_workers={engines}", f"rollout.tensor_parallel_size={tp}",
                             "rollout.gpus_per_worker=1", "cluster.placement_timeout_s=60"])
    try:
        groups = reserve_engines(cfg)
    except PlacementError as e:
        print(json.dumps({"refused": str(e)}))
        return
    actors = [Engine.options(**worker_options(cfg, g)).remote() for g in groups]
    started = ray.get([a.start.remote(tp) for a in actors])
    print(json.dumps({"engines": started, "free_gpus": ray.available_resources().get("GPU", 0)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
