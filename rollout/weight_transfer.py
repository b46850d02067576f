"""The wire of a weight sync: learner rank 0 broadcasts the weights, in buckets of whole layers, to every
rollout engine over one process group (gloo on CPU; the same functions run on CUDA tensors).

Why buckets of whole layers: vLLM fuses q/k/v and gate/up into one parameter and processes a layer once all
of its parts have arrived; a layer split over two rounds would be processed half-new. A bucket therefore
never splits a layer (a layer larger than the bucket travels alone), and buckets go in the sender's
parameter order, which is layer order. One broadcast per bucket instead of one per tensor: at 7B that is
~20 calls instead of ~700.

Sender: two buffers alternate, so bucket k+1 is packed while bucket k is on the wire. Receiver: one buffer
per bucket, kept from sync to sync (allocating them anew would pay a page fault per 4 KiB every time), all
posted at once, each loaded as it lands. They must outlive the update: vLLM's layerwise reload keeps views
of what it was given until the end for layers it cannot process early (a padded vocabulary).

Every collective waits at most the group's timeout: a dead or stuck peer ends a sync with an error. The
waits say the timeout again (`TransferGroup.timeout_s`): gloo keeps to the group's anyway, but an NCCL wait
without one only orders the GPU stream, and a stuck peer would be found by NCCL's watchdog, which ends the
process instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

import torch

ALIGN = 64  # every tensor starts 64-byte aligned in its bucket: any dtype can view it in place


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str  # "float32", "bfloat16", ...
    shape: tuple[int, ...]

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def nbytes(self) -> int:
        n = self.torch_dtype.itemsize
        for d in self.shape:
            n *= d
        return n


def tensor_meta(name: str, t: torch.Tensor, shape: tuple[int, ...] | None = None) -> TensorMeta:
    return TensorMeta(name, str(t.dtype).removeprefix("torch."), tuple(shape if shape is not None else t.shape))


def layer_of(name: str) -> str | None:
    """`model.layers.3.mlp.up_proj.weight` -> `model.layers.3`; None for a name without a layer index."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def _padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def plan_buckets(metas: list[TensorMeta], bucket_bytes: int) -> list[list[int]]:
    """Indices into `metas`, cut into buckets of at most `bucket_bytes` that never split a layer."""
    buckets: list[list[int]] = []
    current: list[int] = []
    size, i = 0, 0
    while i < len(metas):
        layer, j = layer_of(metas[i].name), i + 1
        while layer is not None and j < len(metas) and layer_of(metas[j].name) == layer:
            j += 1
        group_bytes = sum(_padded(metas[k].nbytes) for k in range(i, j))
        if current and size + group_bytes > bucket_bytes:
            buckets.append(current)
            current, size = [], 0
        current += range(i, j)
        size, i = size + group_bytes, j
    if current:
        buckets.append(current)
    return buckets


def bucket_offsets(metas: list[TensorMeta], bucket: list[int]) -> tuple[list[int], int]:
    offsets, end = [], 0
    for k in bucket:
        offsets.append(end)
        end += _padded(metas[k].nbytes)
    return offsets, end


def _view(buffer: torch.Tensor, offset: int, meta: TensorMeta) -> torch.Tensor:
    return buffer[offset : offset + meta.nbytes].view(meta.torch_dtype).view(meta.shape)


@dataclass
class TransferGroup:
    """A process group and the most any wait on it may take (None: the group's own timeout)."""

    process_group: object  # torch.distributed.ProcessGroup
    timeout_s: float | None = None

    def broadcast(self, tensor: torch.Tensor):
        options = torch.distributed.BroadcastOptions()
        options.rootRank = 0
        return self.process_group.broadcast([tensor], options)

    def finish(self, work) -> None:
        """Waits for `work` on the host."""
        if self.timeout_s is None:
            work.wait()
        else:
            work.wait(timedelta(seconds=self.timeout_s))

    def close(self) -> None:
        from vllm.distributed.utils import stateless_destroy_torch_distributed_process_group

        stateless_destroy_torch_distributed_process_group(self.process_group)


def open_group(address: str, port: int, rank: int, world_size: int, timeout_s: float,
               backend: str = "gloo") -> TransferGroup:
    """A process group of its own (not torch's global one, which DeepSpeed and vLLM already use)."""
    from vllm.distributed.utils import stateless_init_torch_distributed_process_group

    return TransferGroup(stateless_init_torch_distributed_process_group(
        address, port, rank, world_size, backend, timeout=timedelta(seconds=timeout_s)), timeout_s)


class BucketSender:
    """Rank 0's side: packs the (name, tensor) pairs, in `metas` order, and broadcasts them bucket by bucket."""

    def __init__(self, metas: list[TensorMeta], buckets: list[list[int]], device: torch.device | str = "cpu"):
        self.metas, self.buckets = metas, buckets
        largest = max((bucket_offsets(metas, b)[1] for b in buckets), default=0)
        self.buffers = [torch.empty(largest, dtype=torch.uint8, device=device) for _ in range(min(2, len(buckets)))]

    def send(self, group: TransferGroup, pairs: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Returns the bytes sent."""
        pairs, pending, sent = iter(pairs), None, 0
        for k, bucket in enumerate(self.buckets):
            buffer = self.buffers[k % 2]
            offsets, size = bucket_offsets(self.metas, bucket)
            for index, offset in zip(bucket, offsets):
                meta, (name, t) = self.metas[index], next(pairs)
                if name != meta.name or tuple(t.shape) != meta.shape or t.dtype != meta.torch_dtype:
                    raise ValueError(f"sending {name} {t.dtype} {tuple(t.shape)} where the receivers expect "
                                     f"{meta.name} {meta.dtype} {meta.shape}")
                _view(buffer, offset, meta).copy_(t)
            if pending is not None:
                group.finish(pending)  # bucket k-1 has left: its buffer is free for bucket k+1
            pending, sent = group.broadcast(buffer[:size]), sent + size
        if pending is not None:
            group.finish(pending)
        if next(pairs, None) is not None:
            raise ValueError(f"more weights than the {len(self.metas)} announced to the receivers")
        return sent


class BucketReceiver:
    """An engine's side: receives every bucket and hands each, as (name, tensor) pairs, to `load`.

    On CPU: one buffer per bucket, kept from sync to sync and handed out as views. On a GPU a second copy of
    the weights would not fit beside the engine's: two buffers alternate, and `load` gets clones."""

    def __init__(self, metas: list[TensorMeta], buckets: list[list[int]], device: torch.device | str = "cpu"):
        self.metas, self.buckets = metas, buckets
        self.layouts = [bucket_offsets(metas, b) for b in buckets]
        self.per_bucket = torch.device(device).type == "cpu"
        sizes = [size for _, size in self.layouts]
        if not self.per_bucket:
            sizes = [max(sizes, default=0)] * min(2, len(sizes))
        self.buffers = [torch.empty(size, dtype=torch.uint8, device=device) for size in sizes]

    def matches(self, metas: list[TensorMeta], buckets: list[list[int]]) -> bool:
        return metas == self.metas and buckets == self.buckets

    def receive(self, group: TransferGroup, load: Callable[[list[tuple[str, torch.Tensor]]], object]) -> int:
        """Returns the bytes received."""
        landing = [self.buffers[k if self.per_bucket else k % 2][:size] for k, (_, size) in enumerate(self.layouts)]
        if self.per_bucket:
            works = [group.broadcast(buffer) for buffer in landing]  # all posted: each lands while others load
        else:
            works = [group.broadcast(landing[0])] if landing else []
        for k, (bucket, (offsets, _)) in enumerate(zip(self.buckets, self.layouts)):
            group.finish(works[k])
            if not self.per_bucket and k + 1 < len(landing):
                works.append(group.broadcast(landing[k + 1]))  # lands in the buffer bucket k-1 left
            pairs = [(self.metas[i].name, _view(landing[k], off, self.metas[i])) for i, off in zip(bucket, offsets)]
            load(pairs if self.per_bucket else [(name, t.clone()) for name, t in pairs])
        return sum(size for _, size in self.layouts)


def update_info(metas: list[TensorMeta], buckets: list[list[int]]) -> dict:
    """What every receiver must know before a sync, as plain data (it crosses Ray and vLLM's RPC)."""
    return {"names": [m.name for m in metas], "dtype_names": [m.dtype for m in metas],
            "shapes": [list(m.shape) for m in metas], "buckets": buckets}


def metas_from_info(names: list[str], dtype_names: list[str], shapes: list[list[int]]) -> list[TensorMeta]:
    return [TensorMeta(n, d, tuple(s)) for n, d, s in zip(names, dtype_names, shapes, strict=True)]
