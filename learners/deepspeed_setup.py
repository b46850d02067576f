"""DeepSpeed engine for a Qwen2.5-VL policy from `LearnerConfig`: ZeRO 1/2/3, fp32 or bf16, AdamW,
warmup + schedule, gradient clipping and checkpointing, an optionally frozen vision tower.

Gradient accumulation is driven by the learner (it marks the boundary itself), so the micro-batch count
may change from step to step (zero-variance groups filtered out) without rebuilding the engine.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from learners.config import LR_SCHEDULES, LearnerConfig


def deepspeed_config(cfg: LearnerConfig) -> dict:
    """bf16 runs accumulate gradients over micro-batches in fp32 (`grad_accum_dtype`): in bf16 a micro-batch
    whose gradient is below 2^-8 of the running sum adds nothing (tests/learners/test_deepspeed_setup.py)."""
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage, "overlap_comm": False, "contiguous_gradients": True},
        "bf16": {"enabled": cfg.dtype == "bf16"},
        **({"data_types": {"grad_accum_dtype": "fp32"}} if cfg.dtype == "bf16" else {}),
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_factor(warmup_steps: int, schedule: str, total_steps: int) -> Callable[[int], float]:
    """The multiplier of a stage's base rate at each of its steps (0-based): linear warmup, then constant,
    or a cosine or linear decay that would reach 0 one step after the stage's last."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r} (one of {', '.join(LR_SCHEDULES)})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return factor


def start_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR, lr: float, factor: Callable[[int], float],
                   restart: bool) -> None:
    """Puts a stage's schedule into the engine's scheduler; the optimizer and its state stay. `restart`
    at the stage's first step; else (a resumed stage) the schedule goes on from the count of updates the
    checkpoint restored, which also skips the steps that had nothing to train, as the first attempt did."""
    if restart:
        scheduler.last_epoch = 0
    scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
    scheduler.lr_lambdas = [factor] * len(scheduler.lr_lambdas)
    for group in scheduler.optimizer.param_groups:
        group["lr"] = lr * factor(scheduler.last_epoch)


def build_engine(model: torch.nn.Module, cfg: LearnerConfig):
    """Returns the DeepSpeed engine (optimizer and scheduler inside it; each stage sets its own schedule
    with `start_schedule`)."""
    import deepspeed

    if cfg.freeze_vision and not cfg.lora.rank:  # under LoRA every base weight is frozen already
        model.model.visual.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                      config=deepspeed_config(cfg))
    return engine
