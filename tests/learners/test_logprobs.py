"""The shared-prefix forward against the per-sequence one, on the real tiny Qwen2.5-VL in fp32."""

import pytest
import torch

from learners import logprobs
from learners.logprobs import media_tensors, scored_sequence, sequence_logprobs

from learner_batch import grpo_batch

MIXED = ("image", "images", "video")


def _model_and_scored(model_dir, seqs, media):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    cache = {k: media_tensors(proc, r) for k, r in media.items()} if (proc := _proc(model_dir)) else {}
    scored = [scored_sequence(model.config, s.prompt_token_ids, s.token_ids, cache[s.prompt_id]) for s in seqs]
    return model, scored, proc.tokenizer.pad_token_id


def _proc(model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


def _logprobs_and_grads(model, scored, pad, advantages, **kw):
    model.zero_grad()
    logps, ents = sequence_logprobs(model, scored, pad, temperature=0.7, banned_ids=[pad], with_entropy=True, **kw)
    sum(a * lp.mean() for a, lp in zip(advantages, logps)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return [lp.detach() for lp in logps], ents, grads


def test_prefix_attention_equals_sdpa_under_the_dense_block_mask():
    """Row [p p p | a a | b b b | pad]: each response sees the prompt and its own earlier tokens, written out
    as a dense mask by hand; grouped query heads (4 query heads on 2 key heads), fp32."""
    from learners.prefix_attention import layout_mask, prefix_attention

    segments = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, -1]])
    allowed = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0, 0],
                            [1, 1, 0, 0, 0, 0, 0, 0, 0],
                            [1, 1, 1, 0, 0, 0, 0, 0, 0],
                            [1, 1, 1, 1, 0, 0, 0, 0, 0],
                            [1, 1, 1, 1, 1, 0, 0, 0, 0],
                            [1, 1, 1, 0, 0, 1, 0, 0, 0],
                            [1, 1, 1, 0, 0, 1, 1, 0, 0],
                            [1, 1, 1, 0, 0, 1, 1, 1, 0],
                            [0, 0, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, 9, 8, generator=gen, requires_grad=True) for h in (4, 2, 2))
    ours, _ = prefix_attention(None, q, k, v, layout_mask(segments), scaling=0.3)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=0.3, enable_gqa=True)
    dense = dense.transpose(1, 2)  # [B, W, H, D], as transformers' attention functions return
    torch.testing.assert_close(ours[:, :8], dense[:, :8])  # the padding position's output is not used
    grads = torch.autograd.grad(ours[:, :8].square().sum(), (q, k, v))
    for ours_grad, dense_grad in zip(grads, torch.autograd.grad(dense[:, :8].square().sum(), (q, k, v))):
        torch.testing.assert_close(ours_grad, dense_grad)


@pytest.mark.parametrize("media_types", [("image",), ("images",), ("video",), MIXED], ids=lambda m: "+".join(m))
def test_shared_prefix_gives_the_log_probs_entropies_and_gradients_of_one_row_per_sequence(tiny_model_dir, media_types):
    """Groups of 3 responses of different lengths, two groups, with the engine's bias and temperature;
    tolerance: fp32 reduction order (the packed row sums attention over more, masked, keys)."""
    _, seqs, media = grpo_batch(tiny_model_dir, groups=2 * len(media_types), g=3, seed=3, media_types=media_types)
    model, scored, pad = _model_and_scored(tiny_model_dir, seqs, media)
    advantages = [s.advantage for s in seqs]
    plain = _logprobs_and_grads(model, scored, pad, advantages)
    shared = _logprobs_and_grads(model, scored, pad, advantages, shared_prefix=True)
    for a, b in zip(plain[0] + plain[1], shared[0] + shared[1], strict=True):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-5)
    assert plain[2].keys() == shared[2].keys() and any(n.startswith("model.visual") for n in plain[2])
    for name, grad in plain[2].items():
        torch.testing.assert_close(shared[2][name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_the_comparison_sees_a_response_that_leaks_into_the_next(tiny_model_dir, monkeypatch):
    """The test above is only worth something if the tiny model's log-probs depend on what each response
    sees: a plain causal mask over the packed row (r2 sees r1) must move them well past its tolerance."""
    _, seqs, media = grpo_batch(tiny_model_dir, groups=1, g=3, seed=3)
    model, scored, pad = _model_and_scored(tiny_model_dir, seqs, media)
    with torch.no_grad():
        plain = torch.cat(sequence_logprobs(model, scored, pad))
        layout = logprobs.layout_mask  # every response counted as prompt: causal over the whole row
        monkeypatch.setattr(logprobs, "layout_mask", lambda seg: layout(torch.where(seg > 0, 0, seg)))
        leaky = torch.cat(sequence_logprobs(model, scored, pad, shared_prefix=True))
    first = len(seqs[0].token_ids)  # the first response sees nothing extra
    torch.testing.assert_close(leaky[:first], plain[:first], atol=2e-5, rtol=1e-5)
    assert (leaky[first:] - plain[first:]).abs().max() > 100 * 2e-5


def test_a_group_split_across_micro_batches_and_a_lone_sequence_score_as_alone(tiny_model_dir):
    _, seqs, media = grpo_batch(tiny_model_dir, groups=2, g=3, seed=4, media_types=("image", "video"))
    model, scored, pad = _model_and_scored(tiny_model_dir, seqs, media)
    with torch.no_grad():
        whole = torch.cat(sequence_logprobs(model, scored, pad))
        parts = [scored[:2], scored[2:4], scored[4:]]  # the first group split, the second group's head alone
        split = torch.cat([torch.cat(sequence_logprobs(model, p, pad, shared_prefix=True)) for p in parts])
    torch.testing.assert_close(split, whole, atol=2e-5, rtol=1e-5)


def test_the_row_layout_is_read_once_per_forward_not_once_per_layer(tiny_model_dir, monkeypatch):
    """Reading the segment ids to the host is a device sync on a GPU: once per forward (every layer gets the
    same mask object), and gradient checkpointing's recompute reuses it."""
    from learners import prefix_attention

    _, seqs, media = grpo_batch(tiny_model_dir, groups=2, g=3, seed=3)
    model, scored, pad = _model_and_scored(tiny_model_dir, seqs, media)
    built = []
    real = prefix_attention._row_layout
    monkeypatch.setattr(prefix_attention, "_row_layout", lambda *a: built.append(1) or real(*a))
    with torch.no_grad():
        sequence_logprobs(model, scored, pad, shared_prefix=True)
    assert model.config.text_config.num_hidden_layers > 1 and len(built) == 2  # two rows, one group each
