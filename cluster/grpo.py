"""The GRPO stage, top to bottom: sample -> rollout (with perturbed videos) -> rewards -> advantages ->
learner step -> weight sync -> log. Every line is a call on a role; the math lives in the packages.

One-step-off mode (`train.one_step_off`) overlaps the rollout of step t+1 with the rewards and learner
step of step t: those responses come from the policy one version behind (staleness 1, logged), so the
PPO ratio then uses the engine's sampling log-probs as the behaviour policy.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cluster.batches import media_item, next_samples, rollout_batch, train_sequences
from learners.losses import group_advantages, zero_variance_groups
from rewards import get_preset
from rewards.metrics import plcc, srcc


def rollout_step(run, step: int):
    """Draw B prompts and sample G responses for each (and for the perturbed copy of each video)."""
    cursor = run.train_reader.state_dict()
    samples = next_samples(run.train_reader, run.train_stream, run.cfg.train.prompts_per_step)
    requests = rollout_batch(samples, step, run.temporal, run.cfg)
    start = time.perf_counter()
    groups = run.rollout.generate(requests)
    return dict(cursor=cursor, samples=samples, requests=requests, groups=groups, seconds=time.perf_counter() - start)


def grpo_stage(run) -> None:
    cfg, G, total, lc = run.cfg, run.cfg.rollout.n, run.cfg.train.grpo_steps, run.cfg.learner
    parse = get_preset(cfg.reward.preset).parse
    run.log.start_stage("grpo", run.step, total)
    run.learner.start_stage(lc.lr, lc.warmup_steps, lc.lr_schedule, total, restart=run.step == 0)
    next_batch, executor = None, ThreadPoolExecutor(max_workers=1)
    while run.step < total:
        step, t0 = run.step, time.perf_counter()
        batch = next_batch or rollout_step(run, step)
        prefetch = executor.submit(rollout_step, run, step + 1) if cfg.train.one_step_off and step + 1 < total else None

        flat = [s for group in batch["groups"] for s in group]
        mos = {s.row.id: s.row.mos for s in batch["samples"]}
        rewards = run.rewards.score([s.text for s in flat], [mos[s.prompt_id] for s in flat],
                                    [s.prompt_id for s in flat], [s.variant for s in flat])

        originals = np.array([s.variant == "original" for s in flat])
        train_samples = [s for s, keep in zip(flat, originals) if keep]
        total_reward = rewards.total[originals]
        advantages = group_advantages(total_reward, G, cfg.learner.advantage)
        keep = np.ones(len(train_samples), dtype=bool)
        if cfg.learner.filter_zero_variance:
            keep = np.repeat(~zero_variance_groups(total_reward, G), G)
        media = {r.prompt_id: media_item(r) for r in batch["requests"] if r.variant == "original"}
        sequences = [seq for seq, k in zip(train_sequences(train_samples, advantages), keep) if k]
        staleness = run.version - min(s.policy_version for s in train_samples)
        learn = run.learner.train_step(sequences, media, off_policy=staleness > 0) if sequences else {}

        next_batch = prefetch.result() if prefetch is not None else None  # never reload under a generation
        sync_s = run.rollout.broadcast_weights(run.learner.weights_ref(), version=run.version + 1)
        run.version += 1
        run.step += 1

        group_pred = parse([s.text for s in train_samples])
        pred = np.where(group_pred.failed, np.nan, group_pred.pred).reshape(-1, G)
        pred_mean = np.array([np.nanmean(p) if np.isfinite(p).any() else 3.0 for p in pred])
        prompt_mos = np.array([mos[s.prompt_id] for s in train_samples[::G]])
        new_tokens = sum(len(s.token_ids) for s in flat)
        metrics = {
            "reward": float(total_reward.mean()), "reward_std": float(total_reward.std()),
            **{f"reward/{k}": float(v[originals].mean()) for k, v in rewards.components.items()},
            "parse_failures": int(rewards.failed[originals].sum()),
            "response_length": float(np.mean([len(s.token_ids) for s in train_samples])),
            "srcc": srcc(pred_mean, prompt_mos), "plcc": plcc(pred_mean, prompt_mos),
            "rollout_s": batch["seconds"], "tokens_per_s": new_tokens / max(batch["seconds"], 1e-9),
            "sync_s": sync_s, "staleness": staleness, "groups_kept": int(keep.sum() // G),
            "skipped_media": run.train_reader.skipped, "step_s": time.perf_counter() - t0, **learn,
        }
        run.log.log("grpo", run.step, metrics)
        run.log.record_batch("grpo", run.step, {
            "prompt_ids": [s.row.id for s in batch["samples"]], "policy_versions": sorted({s.policy_version for s in flat}),
            "rewards": {k: [round(float(x), 6) for x in v] for k, v in rewards.components.items()},
            "responses": len(flat),  # and which: two runs' rewards are comparable where their responses are equal
            "response_digests": [hashlib.blake2b(s.text.encode(), digest_size=4).hexdigest() for s in flat]})
        run.after_step("grpo", next_cursor=next_batch["cursor"] if next_batch else None)
    executor.shutdown()
