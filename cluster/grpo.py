"""The GRPO stage, top to bottom: rollout (with perturbed videos) -> score -> training batch -> learn -> sync
-> log. The loop is calls on roles; building the batch and the step's metrics are one function each below.

One-step-off mode (`train.one_step_off`) overlaps the rollout of step t+1 with the rewards and learner
step of step t: those responses come from the policy one version behind (staleness 1, logged), so the
PPO ratio then uses the engine's sampling log-probs as the behaviour policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cluster.placement import near_engines
from cluster.remote_media import remote_rollout_batch
from learners.losses import group_advantages, zero_variance_groups
from rewards import BatchRewards
from rewards.metrics import plcc, srcc
from rollout.manifest import ManifestRow
from rollout.records import RequestRef, RolloutSample


@dataclass
class RolloutBatch:
    """One step's prompts and their sampled groups (originals first, then perturbed video copies)."""

    cursor: dict  # the data reader's state before these prompts were drawn (for checkpoints)
    rows: list[ManifestRow]
    requests: list[RequestRef]  # the requests stay in the object store (cluster/remote_media.py)
    groups: list[list[RolloutSample]]
    seconds: float
    responses: list[RolloutSample] = field(init=False)

    def __post_init__(self):
        self.responses = [s for group in self.groups for s in group]

    @property
    def originals(self) -> np.ndarray:
        return np.array([s.variant == "original" for s in self.responses])


@dataclass
class TrainingBatch:
    sequences: list[RolloutSample]  # the originals kept, each with its advantage
    media: dict[str, RequestRef]  # by prompt id: where each learner rank fetches the media from
    rewards: np.ndarray  # total reward of every original response
    groups_kept: int
    staleness: int  # policy versions between the newest weights and the oldest response


def rollout_step(run, step: int) -> RolloutBatch:
    """Draw B prompts and sample G responses for each (and for the perturbed copy of each video)."""
    cursor = run.train_reader.state_dict()
    rows, requests = remote_rollout_batch(run.train_reader, run.cfg.train.prompts_per_step, step, run.temporal,
                                          run.request_context, run.cfg.train.seed, near_engines())
    start = time.perf_counter()
    groups = run.rollout.generate(requests)
    return RolloutBatch(cursor, rows, requests, groups, time.perf_counter() - start)


def score(run, batch: RolloutBatch) -> BatchRewards:
    mos = {row.id: row.mos for row in batch.rows}
    flat = batch.responses
    return run.rewards.score([s.text for s in flat], [mos[s.prompt_id] for s in flat], [s.prompt_id for s in flat],
                             [s.variant for s in flat])


def grpo_stage(run) -> None:
    cfg, total, lc = run.cfg, run.cfg.train.grpo_steps, run.cfg.learner
    run.log.start_stage("grpo", run.step, total)
    run.learner.start_stage(lc.lr, lc.warmup_steps, lc.lr_schedule, total, restart=run.step == 0)
    next_batch, executor = None, ThreadPoolExecutor(max_workers=1)
    while run.step < total:
        step, started = run.step, time.perf_counter()
        batch = next_batch or rollout_step(run, step)
        prefetch = executor.submit(rollout_step, run, step + 1) if cfg.train.one_step_off and step + 1 < total else None
        rewards = score(run, batch)
        train = training_batch(batch, rewards, cfg.rollout.n, lc.advantage, lc.filter_zero_variance, run.version)
        learned = run.learner.train_step(train.sequences, train.media, off_policy=train.staleness > 0) \
            if train.sequences else {}
        next_batch = prefetch.result() if prefetch is not None else None  # never reload under a generation
        sync_s = run.rollout.broadcast_weights(run.learner, version=run.version + 1)
        run.version, run.step = run.version + 1, run.step + 1
        run.log.log("grpo", run.step, step_metrics(batch, rewards, train, learned, cfg.rollout.n, sync_s,
                                                   run.train_reader.skipped, time.perf_counter() - started))
        run.log.record_batch("grpo", run.step, batch_record(batch, rewards))
        run.after_step("grpo", next_cursor=next_batch.cursor if next_batch else None)
    executor.shutdown()


def training_batch(batch: RolloutBatch, rewards: BatchRewards, group_size: int, advantage: str,
                   filter_zero_variance: bool, version: int) -> TrainingBatch:
    """GRPO advantages per group of original responses, optionally without the groups whose rewards are all
    equal (DAPO's filter: they carry no signal), as learner sequences with their media."""
    originals = batch.originals
    responses = [s for s, keep in zip(batch.responses, originals) if keep]
    total = rewards.total[originals]
    keep = np.ones(len(responses), dtype=bool)
    if filter_zero_variance:
        keep = np.repeat(~zero_variance_groups(total, group_size), group_size)
    advantages = group_advantages(total, group_size, advantage)
    sequences = [dataclasses.replace(s, advantage=float(a)) for s, a, k in zip(responses, advantages, keep) if k]
    media = {r.prompt_id: r for r in batch.requests if r.variant == "original"}
    staleness = version - min(s.policy_version for s in responses)
    return TrainingBatch(sequences, media, total, int(keep.sum() // group_size), staleness)


def step_metrics(batch: RolloutBatch, rewards: BatchRewards, train: TrainingBatch, learned: dict, group_size: int,
                 sync_s: float, skipped_media: int, step_s: float) -> dict:
    """What one GRPO step logs: rewards by component, parse failures, lengths, the group scores' agreement
    with the MOS (the rule evaluation uses), throughput and the learner's own metrics."""
    originals = batch.originals
    lengths = [len(s.token_ids) for s, keep in zip(batch.responses, originals) if keep]
    group_scores = rewards.parsed.take(np.flatnonzero(originals)).group_scores(group_size)
    mos = np.array([row.mos for row in batch.rows])
    new_tokens = sum(len(s.token_ids) for s in batch.responses)
    return {
        "reward": float(train.rewards.mean()), "reward_std": float(train.rewards.std()),
        **{f"reward/{k}": float(v[originals].mean()) for k, v in rewards.components.items()},
        "parse_failures": int(rewards.failed[originals].sum()), "response_length": float(np.mean(lengths)),
        "srcc": srcc(group_scores, mos), "plcc": plcc(group_scores, mos),
        "rollout_s": batch.seconds, "tokens_per_s": new_tokens / max(batch.seconds, 1e-9), "sync_s": sync_s,
        "staleness": train.staleness, "groups_kept": train.groups_kept, "skipped_media": skipped_media,
        "step_s": step_s, **learned,
    }


def batch_record(batch: RolloutBatch, rewards: BatchRewards) -> dict:
    """Which prompts a step trained on and what their responses earned: two runs' rewards are comparable
    where their responses are equal (a digest of each is kept)."""
    return {"prompt_ids": [row.id for row in batch.rows],
            "policy_versions": sorted({s.policy_version for s in batch.responses}),
            "rewards": {k: [round(float(x), 6) for x in v] for k, v in rewards.components.items()},
            "responses": len(batch.responses),
            "response_digests": [hashlib.blake2b(s.text.encode(), digest_size=4).hexdigest() for s in batch.responses]}
