"""Weights leaving the learner: full (ZeRO-3-gathered) tensors in checkpoint names, as a safetensors blob
(rollout/safetensors_blob.py).

transformers 5 keeps Qwen2.5-VL in memory as `model.language_model.*` / `model.visual.*` but writes
checkpoints as `model.*` / `visual.*`; vLLM's in-place reload expects the checkpoint names, so the export
converts (the test compares with save_pretrained's own key set, catching any future renaming).
"""

from __future__ import annotations

import contextlib

import torch

from learners.lora import is_lora, merged_parameters

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


def full_state_dict(
    module: torch.nn.Module, zero_stage: int, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, whole, in checkpoint names. Under ZeRO-3 every rank must call this
    (each gather is a collective); the result is the same on every rank."""
    tied = getattr(module.config, "tie_word_embeddings", False) or getattr(
        getattr(module.config, "text_config", None), "tie_word_embeddings", False)
    if is_lora(module):  # ZeRO 0-2: whole on every rank
        named = merged_parameters(module).items()
    else:
        named = module.named_parameters()
    out = {}
    for name, param in named:
        if tied and name == "lm_head.weight":
            continue
        with gathered(param, zero_stage):
            # a ZeRO-3 parameter is whole only inside the context; otherwise its live data will do, as every
            # caller copies it out (into a blob or a file) before the next optimizer step
            t = param.detach().clone() if zero_stage == 3 else param.detach()
        out[checkpoint_name(name)] = t.to(dtype) if dtype is not None else t
    return out
