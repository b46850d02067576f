"""The SFT stage (Q-Ponder's cold start): cross-entropy on reasoning responses, then the new weights go
to the rollout workers so evaluation and GRPO start from them."""

from __future__ import annotations

import time

from cluster.batches import next_samples, prompt_token_ids, request_for, response_token_ids
from rollout.records import RolloutSample


def sft_stage(run) -> None:
    cfg, total, lc = run.cfg, run.cfg.train.sft_steps, run.cfg.learner
    run.log.start_stage("sft", run.step, total)
    run.learner.start_stage(lc.sft_lr, lc.sft_warmup_steps, lc.sft_lr_schedule, total, restart=run.step == 0)
    while run.step < total:
        t0 = time.perf_counter()
        samples = next_samples(run.sft_reader, run.sft_stream, cfg.train.sft_batch_size)
        requests = [request_for(s, None, run.preset, cfg) for s in samples]
        targets = [RolloutSample(r.prompt_id, prompt_token_ids(run.processor, r),
                                 response_token_ids(run.processor.tokenizer, s.row.reasoning), text=s.row.reasoning)
                   for r, s in zip(requests, samples)]
        metrics = run.learner.sft_step(targets, {r.prompt_id: r for r in requests})
        run.step += 1
        run.log.record_batch("sft", run.step, {"prompt_ids": [s.row.id for s in samples]})
        run.log.log("sft", run.step, {**metrics, "step_s": time.perf_counter() - t0,
                                      "skipped_media": run.sft_reader.skipped})
        run.after_step("sft")
    run.sync_weights()
