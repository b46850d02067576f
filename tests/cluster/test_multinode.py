"""A Ray cluster of several nodes on this machine, started as an operator would (`ray start`): a head that
holds only the driver (0 CPUs), a rollout node and a learner node (2 ranks and the reward worker), told
apart by declared resources that `cluster.role_resources` asks for. `qthink train` goes in with `ray job submit` (slow).

What it shows: each role runs on its node (the actors' node ids, from Ray's state API), and so do the tasks
that decode a step's media (on the rollout node, not the head); weights cross from the learner node to the
rollout node through the weight-transfer group (every step's engine log-probs equal the learner's for the
responses the engine sampled after a sync); checkpoints land in a folder both nodes reach. Then the rollout
node is removed mid-run: the run ends with a clear error naming the worker, not a hang (lost during a rollout:
its replacement has nowhere to go, `PlacementError` after `cluster.placement_timeout_s`; lost between
rollouts: the next sync fails, `WeightSyncError`); once a new rollout node has joined, `--resume` goes on from
the last checkpoint to the end.
"""

import re
import time

import pytest
from ray_nodes import RayNodes

from train_runs import records

pytestmark = pytest.mark.slow



def _train(out, shared, grpo_steps, *extra):
    return ["train", f"train.output_dir={out}", f"train.checkpoint_dir={out.parent / 'checkpoints'}",
            f"demo.tiny_dir={shared['tiny']}", f"demo.synthetic_dir={shared['synth']}", "demo.images=16",
            "demo.videos=4", "train.sft_steps=1", "train.sft_batch_size=4", f"train.grpo_steps={grpo_steps}",
            "train.prompts_per_step=2", "rollout.n=2", "rollout.max_tokens=8", "train.eval_every=0",
            "train.eval_limit=4", "train.save_every=2", "logging.progress_bar=false", "demo.vision_pretrain_steps=0",
            "demo.sft_images=0", "cluster.role_resources.rollout.rollout_node=1",
            "cluster.role_resources.learner.learner_node=1", "cluster.role_resources.reward.learner_node=1",
            "cluster.placement_timeout_s=20", "rollout.sync_timeout_s=60", *extra]


def _actor_nodes(nodes: RayNodes) -> dict[str, set[str]]:
    """class name -> the node ids its actors ran on (alive or ended; a never-placed actor has none)."""
    from ray.util.state import list_actors

    out: dict[str, set[str]] = {}
    for actor in list_actors(address=nodes.address, detail=True, limit=1000, raise_on_missing_output=False):
        if actor.node_id:
            out.setdefault(actor.class_name, set()).add(actor.node_id)
    return out


def _task_nodes(nodes: RayNodes, name: str, started_before: float) -> set[str]:
    """The node ids the tasks called `name` that started before `started_before` (epoch seconds) ran on."""
    from ray.util.state import list_tasks

    return {t.node_id for t in list_tasks(address=nodes.address, filters=[("name", "=", name)], detail=True,
                                          limit=1000, raise_on_missing_output=False)
            if t.node_id and t.start_time_ms and t.start_time_ms < started_before * 1000}


def _errors(logs: str) -> str:
    lines = [line for line in logs.splitlines() if re.search(r"Error|error:|Traceback", line)]
    return "\n".join(lines)[-4000:] or logs[-4000:]


def _gaps(out) -> list[float]:
    """Engine-vs-learner log-prob gap of every GRPO step after the first (the first samples the initial
    weights, which the learner scores before any sync)."""
    return [m["rollout_logprob_gap"] for m in records(out, "metrics.jsonl")
            if m.get("stage") == "grpo" and m.get("step", 0) >= 2 and "rollout_logprob_gap" in m]


def test_roles_on_their_nodes_weights_across_nodes_and_a_removed_rollout_node(tmp_path):
    shared = {"tiny": tmp_path / "tiny", "synth": tmp_path / "synth"}
    out = tmp_path / "run" / "out"
    nodes = RayNodes()
    try:
        nodes.start_head(num_cpus=0)
        nodes.add_node("rollout_node", num_cpus=1, resources={"rollout_node": 1})
        nodes.add_node("learner_node", num_cpus=3, resources={"learner_node": 3})  # 2 learner ranks, 1 reward
        first = nodes.node_ids()

        # run 1: the rollout node goes away after the checkpoint of global step 2 (sft 1 + grpo 1). A GRPO step
        # here takes ~0.3 s, so a run of a few steps could end before the node is gone; this one cannot.
        assert nodes.submit(*_train(out, shared, 1000), submission_id="multinode-1", wait=False).returncode == 0
        deadline = time.time() + 900
        while not any(b["stage"] == "grpo" and b["step"] == 2 for b in records(out, "batches.jsonl")):
            assert nodes.job_status("multinode-1") in ("RUNNING", "PENDING"), nodes.job_logs("multinode-1")[-4000:]
            assert time.time() < deadline, "run 1 did not reach grpo step 2"
            time.sleep(1)
        removed = time.time()
        nodes.remove_node("rollout_node")
        removed_at = [b["step"] for b in records(out, "batches.jsonl") if b["stage"] == "grpo"][-1]
        deadline = time.time() + 300
        while (status := nodes.job_status("multinode-1")) in ("RUNNING", "PENDING"):
            assert time.time() < deadline, "run 1 did not end after its rollout node was removed"
            time.sleep(2)
        logs = nodes.job_logs("multinode-1")
        assert status == "FAILED", (removed_at, _errors(logs))
        # lost during a rollout: the replacement cannot be placed; lost between two rollouts: the next sync fails
        assert re.search(r"placement error: rollout worker 0: its bundle lost its node and no other node took it "
                         r"within 20 s|WeightSyncError: weight sync v\d+: rollout worker 0 died", logs), _errors(logs)
        placed = _actor_nodes(nodes)
        assert placed["RolloutWorker"] == {first["rollout_node"]}, placed
        assert placed["Learner"] == placed["RewardWorker"] == {first["learner_node"]}, placed
        # media decoded beside the engine (once it is gone, the next step's tasks may go anywhere: the hint is soft)
        assert _task_nodes(nodes, "decode_requests", started_before=removed) == {first["rollout_node"]}
        ours = set().union(*(placed[c] for c in ("RolloutWorker", "Learner", "RewardWorker")))
        assert first["head"] not in ours  # the head holds the driver (and Ray's JobSupervisor) only
        steps_before = [b["step"] for b in records(out, "batches.jsonl") if b["stage"] == "grpo"]

        # run 2: a new rollout node; --resume goes on from the checkpoint to the end, two steps past run 1's last
        nodes.add_node("rollout_node", num_cpus=1, resources={"rollout_node": 1})
        end = steps_before[-1] + 2
        resumed = nodes.submit(*_train(out, shared, end), "--resume", submission_id="multinode-2")
        logs = resumed.stdout + resumed.stderr
        assert resumed.returncode == 0 and re.search(r"Job '\S+' succeeded", logs), logs[-4000:]
        resumed_from = int(re.search(r"resumed from checkpoint step (\d+)", logs)[1])  # sft 1 + grpo steps done
        steps_after = [b["step"] for b in records(out, "batches.jsonl") if b["stage"] == "grpo"][len(steps_before):]
        assert steps_after == list(range(resumed_from, end + 1)), (steps_before, steps_after)
        assert nodes.node_ids()["rollout_node"] in _actor_nodes(nodes)["RolloutWorker"]
        gaps = _gaps(out)
        assert len(gaps) >= end - 1 and max(gaps) < 1e-5, gaps  # cross-node syncs were exact
    finally:
        nodes.stop()
