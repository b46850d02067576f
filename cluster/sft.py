"""The SFT stage (Q-Ponder's cold start): cross-entropy on reasoning responses, then the new weights go
to the rollout workers so evaluation and GRPO start from them. The media are decoded (and the prompts
expanded) by Ray tasks and reach the learner ranks by reference, as in GRPO (cluster/remote_media.py)."""

from __future__ import annotations

import time

from cluster.batches import response_token_ids
from cluster.placement import near_engines
from cluster.remote_media import usable_requests
from rollout.records import RequestRef, RolloutSample


def sft_stage(run) -> None:
    cfg, total, lc = run.cfg, run.cfg.train.sft_steps, run.cfg.learner
    run.log.start_stage("sft", run.step, total)
    run.learner.start_stage(lc.sft_lr, lc.sft_warmup_steps, lc.sft_lr_schedule, total, restart=run.step == 0)
    while run.step < total:
        t0 = time.perf_counter()
        usable = usable_requests(run.sft_reader, cfg.train.sft_batch_size, run.request_context, near_engines(),
                                 prompt_ids=True)
        targets = [RolloutSample(row.id, decoded.prompt_ids, response_token_ids(run.processor.tokenizer, row.reasoning),
                                 text=row.reasoning) for row, decoded, _ in usable]
        media = {row.id: RequestRef(row.id, decoded.media_type, ref) for row, decoded, ref in usable}
        metrics = run.learner.sft_step(targets, media)
        run.step += 1
        run.log.record_batch("sft", run.step, {"prompt_ids": [row.id for row, _, _ in usable]})
        run.log.log("sft", run.step, {**metrics, "step_s": time.perf_counter() - t0,
                                      "skipped_media": run.sft_reader.skipped})
        run.after_step("sft")
    run.sync_weights()
