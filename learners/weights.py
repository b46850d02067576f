"""Weights leaving the learner: full (ZeRO-3-gathered) tensors in checkpoint names, for checkpoints and
for the weight sync, where rank 0 sends them through the weight-transfer group (`WeightSender`).

transformers 5 keeps Qwen2.5-VL in memory as `model.language_model.*` / `model.visual.*` but writes
checkpoints as `model.*` / `visual.*`; vLLM's in-place reload expects the checkpoint names, so the export
converts (the test compares with save_pretrained's own key set, catching any future renaming).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from learners.lora import is_lora, merged_parameters
from rollout.weight_transfer import BucketSender, open_group, plan_buckets, tensor_meta, update_info

_MEMORY_TO_CHECKPOINT = (("model.language_model.", "model."), ("model.visual.", "visual."))


def checkpoint_name(name: str) -> str:
    for memory, checkpoint in _MEMORY_TO_CHECKPOINT:
        if name.startswith(memory):
            return checkpoint + name[len(memory):]
    return name


def gathered(param: torch.nn.Parameter, zero_stage: int):
    """A context in which `param` is whole. Under ZeRO-3 it is a collective: every rank must enter it."""
    if zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters([param], modifier_rank=None)


def _named_weights(module: torch.nn.Module):
    """(checkpoint name, parameter) for every weight a checkpoint holds; LoRA adapters merged."""
    tied = getattr(module.config, "tie_word_embeddings", False) or getattr(
        getattr(module.config, "text_config", None), "tie_word_embeddings", False)
    named = merged_parameters(module).items() if is_lora(module) else module.named_parameters()
    for name, param in named:
        if not (tied and name == "lm_head.weight"):
            yield checkpoint_name(name), param


def full_state(module: torch.nn.Module, zero_stage: int, dtype: torch.dtype | None = None,
               skip_vision: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """Every weight, whole, in checkpoint names, one at a time. Under ZeRO-3 every rank must iterate it in
    step (each gather is a collective)."""
    for name, param in _named_weights(module):
        if skip_vision and name.startswith("visual."):
            continue
        with gathered(param, zero_stage):
            # a ZeRO-3 parameter is whole only inside the context: clone it out; otherwise its live data will
            # do, as every caller copies it (into a bucket or a file) before the next optimizer step
            t = param.detach().clone() if zero_stage == 3 else param.detach()
        yield name, t.to(dtype) if dtype is not None else t


def full_state_dict(module: torch.nn.Module, zero_stage: int, dtype: torch.dtype | None = None
                    ) -> dict[str, torch.Tensor]:
    return dict(full_state(module, zero_stage, dtype))


class WeightSender:
    """The learner's end of a weight sync. Rank 0 sends, bucket by bucket, over the group the rollout engines
    joined (rollout/weight_transfer.py); under ZeRO-3 the other ranks only join the gathers. A frozen vision
    tower (`learner.freeze_vision` without LoRA) never changes, so it is not sent."""

    def __init__(self, module: torch.nn.Module, zero_stage: int, rank: int, bucket_bytes: int,
                 skip_vision: bool = False):
        self.module, self.zero_stage, self.rank, self.skip_vision = module, zero_stage, rank, skip_vision
        self.metas = [tensor_meta(name, p, getattr(p, "ds_shape", None))
                      for name, p in _named_weights(module) if not (skip_vision and name.startswith("visual."))]
        self.buckets = plan_buckets(self.metas, bucket_bytes)
        self.sender = BucketSender(self.metas, self.buckets, next(module.parameters()).device) if rank == 0 else None
        self.group = None

    def update_info(self) -> dict:
        return update_info(self.metas, self.buckets)

    def connect(self, address: str, port: int, world_size: int, timeout_s: float, backend: str) -> None:
        self.close()
        self.group = open_group(address, port, 0, world_size, timeout_s, backend)

    def send(self) -> int:
        """Bytes sent (0 on the other ranks)."""
        pairs = full_state(self.module, self.zero_stage, skip_vision=self.skip_vision)
        if self.sender is not None:
            if self.group is None:
                raise RuntimeError("weight sync: send before connect")
            return self.sender.send(self.group, pairs)
        if self.zero_stage == 3:
            for _ in pairs:
                pass
        return 0

    def close(self) -> None:
        if self.group is not None:
            self.group.close()
            self.group = None
