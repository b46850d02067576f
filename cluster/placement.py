"""Which actor runs where: rollout engines, learner ranks and reward workers, each role in placement groups
reserved before its actors start.

- rollout: a group per engine, STRICT_PACK (an engine's tensor-parallel ranks share a node and its links).
  On GPUs it has one bundle per rank: with TP > 1 the worker holds no GPU itself and vLLM's Ray executor starts
  one worker per bundle (it takes at most one GPU from a bundle). Engines are spread: each group is hinted to
  the next node that can hold an engine. A replaced worker takes its old group;
- learner: one bundle per rank, PACKed (ranks talk every micro-batch);
- reward: one CPU bundle per worker, PACKed.
A reservation the cluster cannot hold fails at once, naming what was asked and what the nodes have; one
that it could hold but does not get within `cluster.placement_timeout_s` (resources busy) fails then.

Locally (CPU) every engine gets its own core list for vLLM's OpenMP threads (with the default "auto"
binding every engine picks the same cores) and Ray is told about as many logical CPUs as the roles ask
for: the roles take turns on the cores in synchronous mode, so oversubscribing the count costs nothing.
"""

from __future__ import annotations

import os
import time

import ray
from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from actors.learner import LearnerGroup
from actors.reward_worker import RewardPool
from actors.rollout_worker import RolloutPool, RolloutWorker
from cluster.config import ENGINE_DTYPE, PlacementError, QThinkConfig
from rewards import Preset


def logical_cpus_needed(cfg: QThinkConfig) -> int:
    r, learner, w = cfg.rollout, cfg.learner, cfg.reward
    return r.num_workers * r.cpus_per_worker + learner.num_ranks * learner.cpus_per_rank + w.num_workers


def _resources(cpus: float, gpus: float, extra: dict | None = None) -> dict:
    return {"CPU": cpus, **({"GPU": gpus} if gpus else {}), **(extra or {})}


def _fits(bundles: list[dict], nodes: list[dict]) -> bool:
    """Every bundle fits some node and the total fits the cluster: a necessary test, cheap and immediate."""
    totals = {k: sum(n.get(k, 0) for n in nodes) for b in bundles for k in b}
    return (all(any(all(n.get(k, 0) >= v for k, v in b.items()) for n in nodes) for b in bundles)
            and all(sum(b.get(k, 0) for b in bundles) <= total for k, total in totals.items()))


def role_bundles(cfg: QThinkConfig) -> dict[str, tuple[list[dict], str]]:
    """Per role: its bundles (with the role's `cluster.role_resources`) and the placement strategy. A rollout
    bundle here is a whole engine, which one node must hold (`engine_bundles` splits it per rank)."""
    r, lc, w, extra = cfg.rollout, cfg.learner, cfg.reward, cfg.cluster.role_resources
    return {"rollout": ([_resources(r.cpus_per_worker, r.gpus_per_worker * r.tensor_parallel_size,
                                    extra.get("rollout"))] * r.num_workers, "STRICT_PACK"),
            "learner": ([_resources(lc.cpus_per_rank, lc.gpus_per_rank, extra.get("learner"))] * lc.num_ranks, "PACK"),
            "reward": ([_resources(1, 0, extra.get("reward"))] * w.num_workers, "PACK")}


def engine_bundles(cfg: QThinkConfig) -> list[dict]:
    """One engine's group: on GPUs a bundle per tensor-parallel rank, the first also holding the worker's CPUs
    and the role's resources; on CPU one bundle (there the engine's ranks are processes of its worker)."""
    r = cfg.rollout
    first = _resources(r.cpus_per_worker, r.gpus_per_worker, cfg.cluster.role_resources.get("rollout"))
    return [first] + [{"GPU": r.gpus_per_worker}] * (r.tensor_parallel_size - 1 if r.gpus_per_worker else 0)


def _nodes() -> tuple[list[dict], str]:
    """The live nodes' resources, and a description of them (Ray's own memory and node-id entries left out)."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    shown = [{k: v for k, v in n.items() if k not in ("memory", "object_store_memory") and not k.startswith("node:")}
             for n in nodes]
    return nodes, "; ".join(f"node {i}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(n.items()))
                            for i, n in enumerate(shown))


def check_cluster_holds(cfg: QThinkConfig, roles: tuple[str, ...] = ("rollout", "learner", "reward")) -> None:
    """Before any role starts: the roles' bundles together fit the live nodes, or a PlacementError naming both."""
    wanted = {role: spec for role, spec in role_bundles(cfg).items() if role in roles}
    nodes, have = _nodes()
    if not _fits([b for bundles, _ in wanted.values() for b in bundles], nodes):
        asked = "; ".join(f"{role} {len(b)} x {b[0]}" for role, (b, _) in wanted.items() if b)
        raise PlacementError(f"the cluster cannot hold what the config asks for: {asked} (it has {have})")


def reserve(role: str, cfg: QThinkConfig) -> PlacementGroup:
    """The learner's or the reward workers' group."""
    bundles, strategy = role_bundles(cfg)[role]
    check_cluster_holds(cfg, (role,))
    return _reserve(role, cfg, [(f"qthink-{role}", bundles, strategy, None)], f"{len(bundles)} x {bundles[0]}")[0]


def reserve_engines(cfg: QThinkConfig) -> list[PlacementGroup]:
    """A group per rollout engine; group i is hinted to the i-th (round robin) node that can hold an engine."""
    check_cluster_holds(cfg, ("rollout",))  # so some node can hold an engine: `nodes` is not empty
    engine, bundles, n = role_bundles(cfg)["rollout"][0][0], engine_bundles(cfg), cfg.rollout.num_workers
    nodes = [node["NodeID"] for node in ray.nodes()
             if node["Alive"] and all(node["Resources"].get(k, 0) >= v for k, v in engine.items())]
    specs = [(_engine_group(i), bundles, "STRICT_PACK", nodes[i % len(nodes)]) for i in range(n)]
    return _reserve("rollout", cfg, specs, f"{n} engines x {bundles}")


def _engine_group(i: int | str) -> str:
    return f"qthink-rollout-{i}"


def near_engines() -> list[dict]:
    """Task options, one per node that holds a rollout engine, that prefer that node: a step's media are decoded
    beside the engines that read them first, not on whichever node has a free slot (often the head's). Soft: a
    node that has gone away is passed over (a task pinned to a lost group would wait for it forever). Read
    anew each step (one call), as engines move when their node goes away."""
    nodes = {g["bundles_to_node_id"].get(0) for g in placement_group_table().values()
             if g["name"].startswith(_engine_group("")) and g["state"] == "CREATED"}
    return [{"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)} for node in sorted(nodes - {None})]


def _reserve(role: str, cfg: QThinkConfig, specs: list[tuple], asked: str) -> list[PlacementGroup]:
    """(name, bundles, strategy, node hint) per group: all of them placed within the timeout, or none."""
    timeout_s = cfg.cluster.placement_timeout_s
    groups = [placement_group(bundles, strategy=strategy, name=name, _soft_target_node_id=hint)
              for name, bundles, strategy, hint in specs]
    ready, _ = ray.wait([g.ready() for g in groups], num_returns=len(groups), timeout=timeout_s)
    if len(ready) < len(groups):
        for group in groups:
            remove_placement_group(group)
        raise PlacementError(f"{role}: {asked} ({specs[0][2]}) not placed within {timeout_s:g} s; "
                             f"free now: {ray.available_resources()} ({_nodes()[1]})")
    return groups


def in_bundle(group: PlacementGroup, index: int = -1) -> dict:
    """Actor options that put an actor in bundle `index` (-1: any) of `group`; what it starts goes there too."""
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=index, placement_group_capture_child_tasks=True)}


def worker_options(cfg: QThinkConfig, group: PlacementGroup) -> dict:
    """A rollout worker in the first bundle of its engine's group. With TP > 1 its GPUs are for the engine's
    own workers, which vLLM's Ray executor starts in the group's bundles."""
    r = cfg.rollout
    return {"num_cpus": r.cpus_per_worker, "num_gpus": r.gpus_per_worker if r.tensor_parallel_size == 1 else 0,
            **in_bundle(group, 0)}


def rollout_pool(cfg: QThinkConfig, model_dir: str) -> RolloutPool:
    r = cfg.rollout
    dtype = ENGINE_DTYPE[cfg.model.dtype]
    cores = os.cpu_count() or 1
    groups = reserve_engines(cfg)

    def make(i: int):
        # A group whose node went away waits for Ray to place it again: fail by name instead of pending.
        deadline = time.monotonic() + cfg.cluster.placement_timeout_s
        while placement_group_table(groups[i])["state"] != "CREATED":
            if time.monotonic() > deadline:
                raise PlacementError(f"rollout worker {i}: its bundle lost its node and no other node took it "
                                     f"within {cfg.cluster.placement_timeout_s:g} s ({_nodes()[1]}); when the "
                                     "cluster has room again, `qthink train --resume` goes on from the last checkpoint")
            time.sleep(1)
        options = worker_options(cfg, groups[i])
        if r.gpus_per_worker:
            return RolloutWorker.options(**options).remote(model_dir, r, dtype)
        first = (i * r.cpus_per_worker) % cores
        cpu_ids = ",".join(str((first + k) % cores) for k in range(r.cpus_per_worker))
        return RolloutWorker.options(**options).remote(model_dir, r, dtype, cpu_ids)

    return RolloutPool(make, r.num_workers, r.chunks_per_worker, r.sync_timeout_s, r.max_restarts, r.call_timeout_s,
                       r.tensor_parallel_size, r.sync_bucket_mb)


def learner_group(cfg: QThinkConfig, model_dir: str) -> LearnerGroup:
    lc = cfg.learner
    group = reserve("learner", cfg)
    return LearnerGroup(model_dir, lc, max_tokens=cfg.rollout.max_tokens, temperature=cfg.rollout.temperature,
                        actor_options=lambda rank: {"num_cpus": lc.cpus_per_rank, "num_gpus": lc.gpus_per_rank,
                                                    **in_bundle(group, rank)})


def reward_pool(cfg: QThinkConfig, preset: Preset) -> RewardPool:
    w = cfg.reward
    weights = {**{name: 1.0 for name in w.custom}, **w.weights}
    scope = None if w.rank_scope == "global" else w.rank_slice
    group = reserve("reward", cfg)
    return RewardPool(w.num_workers, preset, weights=weights or None, scope=scope,
                      worker_options={"num_cpus": 1, **in_bundle(group)}, max_restarts=w.max_restarts,
                      group_size=cfg.rollout.n,
                      call_timeout_s=w.call_timeout_s)
