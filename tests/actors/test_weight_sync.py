"""THE system check: after a learner step and a broadcast, the rollout engine samples from the learner's
new policy: its logprobs for the sequences it samples equal the learner's for the same sequences (slow)."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import ray

from actors.learner import LearnerGroup
from actors.rollout_worker import RolloutPool, RolloutWorker
from cluster.config import LearnerConfig, RolloutConfig
from learners.config import LoraConfig
from rollout.records import RolloutRequest

pytestmark = pytest.mark.slow


def _requests(seed):
    rng = np.random.default_rng(0)
    return [RolloutRequest(f"p{i}", "image", image=rng.integers(0, 255, (112, 112, 3), dtype=np.uint8), seed=seed + i)
            for i in range(2)]


def _worker_logs() -> str:
    """What this Ray session's workers (and the vLLM processes they started) printed."""
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("worker-*")) if p.suffix in (".out", ".err"))


def _train_batch(groups, requests):
    seqs = [dataclasses.replace(s, advantage=1.0 if s.index == 0 else -1.0) for g in groups for s in g]
    return seqs, {r.prompt_id: r for r in requests}


@pytest.mark.parametrize("lora_rank", [0, 4], ids=["full", "lora"])
def test_engine_logprobs_equal_learner_logprobs_after_a_step_and_a_sync(ray_local, tiny_model_dir, tmp_path, lora_rank):
    """With LoRA the learner sends the merged weights, and its final dir is a plain model vLLM loads."""
    rollout_cfg = RolloutConfig(n=2, max_tokens=10, max_model_len=1024)
    pool = RolloutPool(lambda i: RolloutWorker.options(num_cpus=1).remote(str(tiny_model_dir), rollout_cfg), 1)
    learner = LearnerGroup(str(tiny_model_dir), LearnerConfig(num_ranks=1, lr=2e-2, beta=0.0, micro_batch_size=4,
                                                              lora=LoraConfig(rank=lora_rank)), max_tokens=10)
    before = pool.generate(_requests(0))
    seqs, media = _train_batch(before, _requests(0))
    metrics = learner.train_step(seqs, media)
    assert metrics["rollout_logprob_gap"] < 1e-6  # engine and learner agreed before the step, to float error

    pool.broadcast_weights(learner, version=1)
    after = pool.generate(_requests(100))
    assert {s.policy_version for g in after for s in g} == {1}
    seqs_after, media_after = _train_batch(after, _requests(100))
    learner_lp = learner.score(seqs_after, media_after)
    engine_lp = [s.logprobs for g in after for s in g]
    gaps = [np.abs(np.array(a) - np.array(b)).max() for a, b in zip(engine_lp, learner_lp)]
    assert max(gaps) < 1e-5, gaps  # the engine samples from exactly the learner's new weights
    # the layers that received nothing (the tied lm_head, derived buffers) are named once, not warned about
    logs = _worker_logs()
    assert "Failed to load weights" not in logs
    assert "ParallelLMHead x1" in "".join(re.findall(r"layers that received no weights keep their tensors.*", logs))

    # and the step mattered: the old engine weights would score these sequences differently
    stale = RolloutPool(lambda i: RolloutWorker.options(num_cpus=0).remote(str(tiny_model_dir), rollout_cfg), 1)
    replay = stale.generate(_requests(100))  # same seeds, old weights: other samples or other logprobs
    assert [s.logprobs for g in replay for s in g] != engine_lp
    for w in stale.workers:
        ray.kill(w)
    learner.save_hf(str(tmp_path / "final"))
    final = RolloutPool(lambda i: RolloutWorker.options(num_cpus=0).remote(str(tmp_path / "final"), rollout_cfg), 1)
    served = final.generate(_requests(100))  # same seeds, the saved final model: what the synced engine sampled
    assert [s.token_ids for g in served for s in g] == [s.token_ids for g in after for s in g]
    for ours, synced in zip([s.logprobs for g in served for s in g], engine_lp, strict=True):
        assert np.abs(np.array(ours) - np.array(synced)).max() < 1e-5
    for w in pool.workers + final.workers + learner.ranks:
        ray.kill(w)
