"""Low-rank adapters (peft) on a Qwen2.5-VL policy: where they go, the merged weights that leave the learner,
and folding them into the base when a stage ends.

The KL reference is the policy with its adapters disabled. After an SFT stage it must be the SFT model (as
with full fine-tuning), so `fold_into_base` adds each adapter's product into its base weight and restarts
the adapter at zero — in the module and in DeepSpeed's fp32 master copy and Adam moments, which would
otherwise write the old adapter back at the next step. The policy does not change; the disabled-adapter
model becomes it. LoRA runs under ZeRO 0-2 (the config refuses 3): the frozen base is whole on every rank,
so the fold is the same local update everywhere and the export needs no gather.
"""

from __future__ import annotations

import torch

from learners.config import LearnerConfig

VISION_MODULES = ("qkv", "proj", "gate_proj", "up_proj", "down_proj")


def with_adapters(model: torch.nn.Module, cfg: LearnerConfig) -> torch.nn.Module:
    """The model wrapped by peft: adapters on the language layers' `cfg.lora.target_modules`, and on the vision
    blocks' attention and MLP unless `cfg.freeze_vision`; every base weight frozen."""
    from peft import LoraConfig, get_peft_model

    patterns = [rf"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.({'|'.join(cfg.lora.target_modules)})"]
    if not cfg.freeze_vision:
        patterns.append(rf"model\.visual\.blocks\.\d+\.(attn|mlp)\.({'|'.join(VISION_MODULES)})")
    lora = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules="|".join(f"(?:{p})" for p in patterns))
    wrapped = get_peft_model(model, lora)
    wrapped.register_state_dict_post_hook(_drop_frozen)
    return wrapped


def _drop_frozen(module, state_dict, prefix, local_metadata) -> None:
    """The wrapped model's state dict (what a DeepSpeed checkpoint saves) holds the adapters and buffers, not
    the frozen base: a tied output layer is a second name of the frozen embedding, which DeepSpeed's own
    `exclude_frozen_parameters` keeps."""
    frozen = {p.data_ptr() for p in module.parameters() if not p.requires_grad}
    for key in [k for k, v in state_dict.items() if v.data_ptr() in frozen]:
        del state_dict[key]


def is_lora(module: torch.nn.Module) -> bool:
    return hasattr(module, "peft_config")


def _adapter_layers(peft_model):
    from peft.tuners.lora import LoraLayer

    return [m for m in peft_model.modules() if isinstance(m, LoraLayer)]


def merged_parameters(peft_model) -> dict[str, torch.Tensor]:
    """Every base parameter with its adapters' products added, in the base model's own names."""
    deltas = {}
    for layer in _adapter_layers(peft_model):
        deltas[id(layer.get_base_layer().weight)] = sum(layer.get_delta_weight(a) for a in layer.active_adapters)
    out = {}
    for name, param in peft_model.get_base_model().named_parameters():
        if "lora_" in name:
            continue
        delta = deltas.get(id(param))
        out[name.replace(".base_layer", "")] = param.detach() if delta is None else param.detach() + delta.detach()
    return out


@torch.no_grad()
def fold_into_base(peft_model) -> None:
    """W += B A x scale, then B = 0 in the module, the optimizer's master copy and its Adam moments."""
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    for layer in _adapter_layers(peft_model):
        for adapter in layer.active_adapters:
            layer.get_base_layer().weight += layer.get_delta_weight(adapter)
            b = layer.lora_B[adapter].weight
            b.zero_()
            zero = torch.zeros_like(b, dtype=torch.float32)
            safe_set_full_fp32_param(b, zero)
            for moment in ("exp_avg", "exp_avg_sq"):
                safe_set_full_optimizer_state(b, zero, moment)


def base_parameters(peft_model) -> dict[str, torch.Tensor]:
    """The frozen base weights (what a fold changed), as the module names them: saved with a checkpoint."""
    return {n: p for n, p in peft_model.named_parameters() if "lora_" not in n}
