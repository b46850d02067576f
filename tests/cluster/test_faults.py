"""Faults injected into a real `qthink train` from outside, as an operator's `kill -9` would: the process of
an actor is found by its Ray title (`ray::RolloutWorker.generate`) and gets SIGKILL. Each run is compared
with one fault-free run of the same config (slow; `make test-faults`).

What must match the fault-free run: the steps, in order (after a resume: the first attempt's steps, then
the checkpoint's next step to the end); every step's prompt ids, response count and policy versions; and
the rewards. Rollout sampling is seeded per request from (seed, step, position), so an engine given the
same weights samples the same responses, also when a re-run chunk lands on a fresh worker. The learner
is reproducible only to float rounding (two fault-free runs can differ in the last bits of a step's
gradient norm), so after the first update a sampled token may in principle differ. Rewards are therefore
compared where the responses are the same (batches.jsonl keeps a digest of each): the per-response
components (parsed from the response against its MOS) response by response, and every component, the
group ones included, on a step whose responses are all the same.
"""

import json
import os
import re
import signal
import time

import pytest

from rewards import get_preset

from train_runs import (
    kill_actor,
    left_behind,
    qthink,
    records,
    signal_all,
    train_args,
    wait_for_actor,
    wait_for_step,
    wait_until_idle,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]

STEPS = 6  # grpo steps after 2 sft steps; a checkpoint every 2 global steps: after grpo steps 2, 4 and 6
PER_RESPONSE = [c.name for c in get_preset("qthink").components if c.level == "response"]


@pytest.fixture(scope="module")
def fault_free(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("fault-free") / "run"
    proc = qthink("train", *train_args(out, shared, grpo_steps=STEPS))
    try:
        log, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log[-3000:]
    return records(out, "batches.jsonl")


def steps(batches):
    return [(b["stage"], b["step"]) for b in batches]


def compare(batches, fault_free) -> dict:
    """Asserts each record matches the fault-free record of its step (module docstring); returns, per
    grpo step, how many of its responses were the same and so had their rewards compared."""
    expected, same = {(b["stage"], b["step"]): b for b in fault_free}, {}
    for b in batches:
        ref = expected[(b["stage"], b["step"])]
        assert b["prompt_ids"] == ref["prompt_ids"], b["step"]  # every prompt of the step, in order
        if b["stage"] != "grpo":
            continue
        assert b["responses"] == ref["responses"] == len(b["response_digests"]), b["step"]
        assert b["policy_versions"] == ref["policy_versions"], b["step"]
        equal = [d == r for d, r in zip(b["response_digests"], ref["response_digests"], strict=True)]
        for name in list(ref["rewards"]) if all(equal) else PER_RESPONSE:
            got, want = b["rewards"][name], ref["rewards"][name]
            assert [g for g, e in zip(got, equal) if e] == [w for w, e in zip(want, equal) if e], (b["step"], name)
        same[b["step"]] = sum(equal)
    return same


def completes_like_fault_free(proc, out, fault_free) -> None:
    """A run that had a worker killed in grpo step 3 ends like the fault-free run; step 3's responses were
    compared; no process of it is left (the dead worker's vLLM engine process included)."""
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    batches = records(out, "batches.jsonl")
    assert steps(batches) == steps(fault_free)
    assert compare(batches, fault_free)[3] > 0
    assert not left_behind(proc.pid)


def resume_matches_fault_free(start, args, out, fault_free, checkpoints=None) -> None:
    """After a run that died after grpo step 3: `--resume` goes on from the last complete checkpoint (after step
    2; after step 4 when the fault came late: a step of these runs takes well under a second), redoes the steps
    after it (the first attempt's records of them stay) and ends like the fault-free run."""
    first = records(out, "batches.jsonl")
    state = json.loads(sorted((checkpoints or out / "checkpoints").glob("step_*/driver_state.json"))[-1].read_text())
    assert state["stage"] == "grpo" and state["step"] in (2, 4) and first[-1]["step"] >= 3, (state, first[-1])
    resumed = start("train", *args, "--resume")
    log, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, log[-3000:]
    assert "resumed from checkpoint" in log
    batches = records(out, "batches.jsonl")
    again = steps(fault_free).index(("grpo", state["step"] + 1))
    assert steps(batches) == steps(fault_free)[: len(first)] + steps(fault_free)[again:]
    assert compare(batches, fault_free)[state["step"] + 1] > 0
    for m in records(out, "metrics.jsonl"):  # both attempts: a linear decay from 1e-4 over the grpo steps
        if m["stage"] == "grpo":
            assert m["lr"] == pytest.approx(1e-4 * (1 - (m["step"] - 1) / STEPS)), m["step"]


def test_rollout_worker_killed_mid_generation_is_replaced_and_its_chunk_rerun(tmp_path, shared, start, fault_free):
    out = tmp_path / "run"
    proc = start("train", *train_args(out, shared, grpo_steps=STEPS))
    wait_for_step(proc, out, 2)
    kill_actor(proc, "ray::RolloutWorker.generate")  # step 3's rollout
    completes_like_fault_free(proc, out, fault_free)


def test_reward_worker_killed_mid_step_is_replaced_and_its_shard_rescored(tmp_path, shared, start, fault_free):
    out = tmp_path / "run"
    proc = start("train", *train_args(out, shared, grpo_steps=STEPS))
    wait_for_step(proc, out, 2)
    wait_for_actor(proc, "ray::RolloutWorker.generate")  # step 3 is under way: its batch meets a dead worker
    kill_actor(proc, "ray::RewardWorker")
    completes_like_fault_free(proc, out, fault_free)


@pytest.mark.parametrize("victim, error", [
    ("ray::Learner", r"LearnerRankError: learner rank \d \(pid {pid}\) died during train_step"),
    ("ray::RolloutWorker", r"WeightSyncError: weight sync v\d+: rollout worker \d+ died"),
], ids=["learner-rank", "rollout-worker-at-sync"])
def test_dead_learner_rank_or_rollout_worker_at_sync_fails_the_run_clearly_and_resume_goes_on(
        tmp_path, shared, start, fault_free, victim, error):
    """A grpo step of this config takes ~0.2 s, its learner step ~0.05 s: too short to catch from outside.
    So the learner ranks are stopped (SIGSTOP) as soon as step 3 is recorded: step 4 then rolls out and
    waits in its learner step, where the victim dies; the ranks go on (SIGCONT) and step 4 must fail."""
    out = tmp_path / "run"
    args = train_args(out, shared, grpo_steps=STEPS)
    proc = start("train", *args)
    learners = wait_for_actor(proc, "ray::Learner")  # both ranks, whatever they run
    wait_for_step(proc, out, 3, poll=0.002)  # step 4's rollout (~0.1 s) comes before its learner step
    signal_all(learners, signal.SIGSTOP)
    if victim == "ray::RolloutWorker":
        wait_until_idle(proc, ["ray::RolloutWorker", "ray::RewardWorker"])  # step 4 is in its learner step
    pid, killed_at = kill_actor(proc, victim), time.time()
    signal_all(learners, signal.SIGCONT)
    log, _ = proc.communicate(timeout=120)  # fails, does not hang
    assert proc.returncode != 0 and time.time() - killed_at < 60
    assert re.search(error.format(pid=pid), log), log[-3000:]
    assert not left_behind(proc.pid)
    resume_matches_fault_free(start, args, out, fault_free)


def test_killed_driver_resumes_at_the_checkpoints_next_step_with_the_same_data(tmp_path, shared, start, fault_free):
    out, checkpoints = tmp_path / "run", tmp_path / "shared-storage" / "ckpt"
    # checkpoints go to a filesystem URI apart from the run's folder (file:// is written in place; the
    # upload path of remote filesystems is tests/cluster/test_checkpoint.py's)
    args = [*train_args(out, shared, grpo_steps=STEPS), f"train.checkpoint_dir=file://{checkpoints}"]
    proc = start("train", *args)
    wait_for_step(proc, out, 3)  # the checkpoint after grpo step 2 is complete; step 3 will be lost
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, Ray's head processes and the rest of its group
    proc.wait()
    assert not left_behind(proc.pid)  # the actors stop once their head is gone
    assert not (out / "checkpoints").exists()
    resume_matches_fault_free(start, args, out, fault_free, checkpoints)
