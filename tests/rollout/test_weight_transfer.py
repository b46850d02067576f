"""The weight-sync wire: buckets of whole layers, and a real gloo broadcast from a sender to two receivers."""

import threading

import pytest
import torch

from cluster.ray_cluster import free_port
from rollout.weight_transfer import (
    BucketReceiver,
    BucketSender,
    TensorMeta,
    layer_of,
    open_group,
    plan_buckets,
    tensor_meta,
)


def _weights():
    g = torch.Generator().manual_seed(0)
    names = ["model.embed_tokens.weight"]
    for layer in range(3):
        names += [f"model.layers.{layer}.self_attn.{p}_proj.weight" for p in "qkv"]
        names += [f"model.layers.{layer}.mlp.{p}_proj.weight" for p in ("gate", "up")]
    names.append("model.norm.weight")
    out = [(n, torch.randn(16, 8, generator=g)) for n in names]
    out.append(("visual.blocks.0.norm1.weight", torch.randn(5, generator=g).to(torch.bfloat16)))  # odd size
    return out


def test_buckets_keep_every_layer_whole_and_respect_the_budget_between_layers():
    metas = [tensor_meta(n, t) for n, t in _weights()]
    layer_bytes = 5 * 16 * 8 * 4
    buckets = plan_buckets(metas, bucket_bytes=2 * layer_bytes)
    assert sorted(k for b in buckets for k in b) == list(range(len(metas)))  # every tensor once, in order
    assert [k for b in buckets for k in b] == list(range(len(metas)))
    for layer in range(3):
        holding = {i for i, b in enumerate(buckets) for k in b if layer_of(metas[k].name) == f"model.layers.{layer}"}
        assert len(holding) == 1  # q/k/v and gate/up of a layer never split
    assert max(len(b) for b in buckets) <= 1 + 2 * 5
    # a layer larger than the budget travels alone, whole
    alone = plan_buckets(metas, bucket_bytes=100)
    assert [metas[k].name for k in alone[1]] == [n for n, _ in _weights()[1:6]]
    assert layer_of("model.norm.weight") is None and layer_of("visual.blocks.12.mlp.fc1.bias") == "visual.blocks.12"


def test_two_receivers_get_every_tensor_bit_exact_over_gloo_and_a_mismatch_is_named():
    weights = _weights()
    metas = [tensor_meta(n, t) for n, t in weights]
    buckets = plan_buckets(metas, bucket_bytes=1500)
    assert len(buckets) > 2  # the sender's two buffers alternate
    port, received, groups = free_port(), {1: [], 2: []}, {}

    def member(rank):
        groups[rank] = open_group("127.0.0.1", port, rank, 3, timeout_s=30)
        if rank:
            BucketReceiver(metas, buckets).receive(groups[rank], lambda pairs: received[rank].extend(
                (n, t.clone()) for n, t in pairs))

    threads = [threading.Thread(target=member, args=(r,)) for r in (1, 2)]
    for t in threads:
        t.start()
    member(0)
    sent = BucketSender(metas, buckets).send(groups[0], iter(weights))
    for t in threads:
        t.join()
    assert sent >= sum(m.nbytes for m in metas)
    for rank in (1, 2):
        assert [n for n, _ in received[rank]] == [n for n, _ in weights]
        for (_, got), (_, want) in zip(received[rank], weights):
            assert got.dtype == want.dtype and torch.equal(got, want)
    wrong = [(n, t.double()) if n == "model.embed_tokens.weight" else (n, t) for n, t in weights]
    with pytest.raises(ValueError, match="sending model.embed_tokens.weight torch.float64"):
        BucketSender(metas, buckets).send(None, iter(wrong))
    for g in groups.values():
        g.close()
    assert TensorMeta("x", "bfloat16", (3, 4)).nbytes == 24
