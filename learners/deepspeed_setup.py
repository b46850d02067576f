"""DeepSpeed engine for a Qwen2.5-VL policy from `LearnerConfig`: ZeRO 1/2/3, fp32 or bf16, AdamW,
warmup + schedule, gradient clipping and checkpointing, an optionally frozen vision tower.

Gradient accumulation is driven by the learner (it marks the boundary itself), so the micro-batch count
may change from step to step (zero-variance groups filtered out) without rebuilding the engine.
"""

from __future__ import annotations

import math

import torch

from cluster.config import LearnerConfig  # dataclass only


def deepspeed_config(cfg: LearnerConfig) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage, "overlap_comm": False, "contiguous_gradients": True},
        "bf16": {"enabled": cfg.dtype == "bf16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(cfg: LearnerConfig, total_steps: int):
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        raise ValueError(f"learner.lr_schedule: unknown {cfg.lr_schedule!r} (constant | cosine | linear)")

    return factor


def build_engine(model: torch.nn.Module, cfg: LearnerConfig, total_steps: int):
    """Returns the DeepSpeed engine (optimizer and scheduler inside it)."""
    import deepspeed

    if cfg.freeze_vision:
        model.model.visual.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                      config=deepspeed_config(cfg))
    return engine
