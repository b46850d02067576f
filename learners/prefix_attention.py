"""Attention for shared-prefix rows `[prompt | r1 | ... | rG | pad]` without a dense row x row mask.

A dense block mask (every response may see the prompt and itself) makes the attention kernel compute the
whole W x W square of a row and skip nothing: W = P + G x n tokens, so the responses' cross terms cost as
much as they would if they saw each other. Here the prompt attends causally to itself (one sdpa call that
may use the fastest causal kernel), and the G responses attend as G short rows to the prompt's keys plus
their own (one sdpa call over a [G, n, P + n] mask): G x n x (P + n) scores instead of (P + Gn)^2, the
split Prefix Grouper (arXiv 2506.05433) makes. Gradients flow to the prompt's keys and values from every
response. The forward is registered with transformers as an attention implementation: with any other mask
it is transformers' own sdpa attention, so a model set to it scores one-row-per-sequence batches as before.

The layout travels in the `attention_mask` argument as a [B, 1, 1, W] int64 tensor of segment ids (0 the
prompt, k > 0 response k, -1 padding): transformers hands a 4-D mask to the attention unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "qthink_prefix_sdpa"


def layout_mask(segments: torch.Tensor) -> torch.Tensor:
    """The `attention_mask` a shared-prefix forward passes: [B, W] segment ids -> [B, 1, 1, W]."""
    return segments[:, None, None, :]


def _is_layout(mask) -> bool:
    return isinstance(mask, torch.Tensor) and mask.dtype == torch.long and mask.dim() == 4 and mask.shape[2] == 1


@dataclass
class _RowLayout:
    prompt: int  # prompt tokens at the row's start
    lengths: list[int]  # each response's length, in order
    index: torch.Tensor | None  # [G, n]: the position of response g's token t (clamped past its end)
    sees: torch.Tensor | None  # [G, 1, n, P + n]: what each response token attends to
    pad: int


def _row_layout(segments: torch.Tensor, device) -> _RowLayout:
    """From one row's segment ids (on the host)."""
    prompt = int((segments == 0).sum())
    ids = segments[prompt:]
    lengths = torch.bincount(ids[ids > 0])[1:].tolist()
    index = sees = None
    if lengths:
        longest, starts = max(lengths), torch.tensor(lengths).cumsum(0) - torch.tensor(lengths) + prompt
        offsets = torch.arange(longest)
        index = (starts[:, None] + offsets).clamp(max=len(segments) - 1).to(device)
        valid = (offsets[None] < torch.tensor(lengths)[:, None]).to(device)  # [G, n]
        own = torch.ones(longest, longest, dtype=torch.bool, device=device).tril() & valid[:, None, :]
        sees = torch.cat([torch.ones(len(lengths), longest, prompt, dtype=torch.bool, device=device), own],
                         dim=2)[:, None]  # padded queries see the prompt (no empty row)
    return _RowLayout(prompt, lengths, index, sees, len(segments) - prompt - sum(lengths))


def _layouts(attention_mask: torch.Tensor) -> list[_RowLayout]:
    """One layout per row, kept on the mask: every attention layer of a forward gets the same mask object, so
    the segment ids are read to the host once per forward, not once per layer (a device sync each on a GPU)."""
    layouts = getattr(attention_mask, "_qthink_layouts", None)
    if layouts is None:
        segments = attention_mask[:, 0, 0].cpu()
        layouts = attention_mask._qthink_layouts = [_row_layout(row, attention_mask.device) for row in segments]
    return layouts


def _row(query, key, value, layout: _RowLayout, scaling, gqa: bool) -> torch.Tensor:
    """One row's output, [W, H, D]: the prompt causally, then each response over the prompt and itself."""
    prompt, lengths = layout.prompt, layout.lengths
    outs = [F.scaled_dot_product_attention(query[:, :prompt], key[:, :prompt], value[:, :prompt], is_causal=True,
                                           scale=scaling, enable_gqa=gqa).transpose(0, 1)]
    if lengths:
        index = layout.index
        q = query[:, index].transpose(0, 1)  # [G, H, n, D]
        k = torch.cat([key[:, :prompt].expand(len(lengths), -1, -1, -1), key[:, index].transpose(0, 1)], dim=2)
        v = torch.cat([value[:, :prompt].expand(len(lengths), -1, -1, -1), value[:, index].transpose(0, 1)], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=layout.sees, scale=scaling, enable_gqa=gqa)
        out = out.transpose(1, 2)  # [G, n, H, D]
        outs += [out[g, :n] for g, n in enumerate(lengths)]
    if layout.pad:
        outs.append(query.new_zeros(layout.pad, query.shape[0], query.shape[-1]))
    return torch.cat(outs)


def prefix_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention signature: query [B, H, W, D], key/value [B, Hkv, W, D] -> ([B, W, H, D], None)."""
    if not _is_layout(attention_mask):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = query.shape[1] != key.shape[1]
    out = torch.stack([_row(query[b], key[b], value[b], layout, scaling, gqa)
                       for b, layout in enumerate(_layouts(attention_mask))])
    return out, None


def use_prefix_attention(model) -> None:
    """Registers the implementation (once) and sets the model's language layers to it (a model, a peft model
    or a DeepSpeed engine around either)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, prefix_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
    text = getattr(model, "module", model).config.text_config  # a DeepSpeed engine's own `config` is its settings
    if text._attn_implementation != NAME:
        text._attn_implementation = NAME
