"""The learner role's settings (the `learner:` section of qthink's config tree, composed by cluster/config.py)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

# One dtype vocabulary for the model (vLLM engines) and the learner (DeepSpeed).
Dtype = typing.Literal["fp32", "bf16"]
LrSchedule = typing.Literal["constant", "cosine", "linear"]
LR_SCHEDULES = typing.get_args(LrSchedule)


LORA_LANGUAGE_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) instead of full fine-tuning; rank 0 is off. The reference of the KL term is
    the model with its adapters disabled, so no second copy of the weights is held."""

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    # module names inside each language-model layer; the vision tower's blocks get adapters on their
    # attention and MLP too unless learner.freeze_vision
    target_modules: list[str] = field(default_factory=lambda: list(LORA_LANGUAGE_MODULES))


@dataclass
class LearnerConfig:
    """DeepSpeed ranks and the SFT and GRPO updates they apply."""

    zero_stage: int = 2
    dtype: Dtype = "fp32"
    num_ranks: int = 2
    cpus_per_rank: int = 1
    gpus_per_rank: int = 0
    # Each stage warms up and decays over its own steps (a decay run over both would leave GRPO a few
    # percent of its rate). Schedules: constant | cosine | linear (the last two decay towards 0).
    lr: float = 1e-6  # GRPO
    warmup_steps: int = 0
    lr_schedule: LrSchedule = "constant"
    sft_lr: float = 1e-5  # the cold start (Q-Ponder) usually runs at a higher rate than RL
    sft_warmup_steps: int = 0
    sft_lr_schedule: LrSchedule = "constant"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    micro_batch_size: int = 8
    # > 0: micro-batches of whole groups up to this many padded tokens (sequences x longest) instead of
    # micro_batch_size sequences: mixed image/video batches stop paying a video's length for every image
    max_tokens_per_micro: int = 0
    # the G responses to one prompt share one forward row [prompt | r1 | ... | rG] (learners/logprobs.py):
    # the vision tower and the prompt run once per group (attention: learners/prefix_attention.py)
    shared_prefix: bool = True
    advantage: typing.Literal["grpo", "dr_grpo"] = "grpo"  # (r - mean) / std, or Dr.GRPO's r - mean
    filter_zero_variance: bool = False
    loss_agg: typing.Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "seq-mean-token-mean"
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float = 0.0  # 0 disables; else c > 1 bounds negative-advantage ratios (dual-clip PPO)
    # Engine/learner mismatch correction: none | tis (truncated importance sampling, as TRL and verl offer):
    # each token's loss weighted by min(pi_learner / pi_engine, rollout_is_cap); ratio statistics logged
    rollout_is: typing.Literal["none", "tis"] = "none"
    rollout_is_cap: float = 2.0
    beta: float = 0.04  # KL coefficient; 0 skips the reference model
    kl_estimator: typing.Literal["k1", "k2", "k3"] = "k3"  # Schulman's estimators
    gradient_checkpointing: bool = False
    freeze_vision: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
