"""The weight-sync wire alone (rollout/weight_transfer.py), on CPU or CUDA tensors: one sender, N receivers,
each its own process in one gloo group, the weights of a Qwen2.5-VL-shaped model in buckets of whole layers.

Why a separate script: the GPU machines lent to this project have torch + CUDA but no vLLM and no Ray, so
the full sync (benchmarks/weight_sync.py) cannot run there; this one needs torch only. It reports, per run,
seconds per sync, bytes, the ratio to the bound (bytes / the device's copy bandwidth, measured in the same
run) and checks that every receiver got every tensor bit-exact. With one GPU the group is gloo (NCCL needs
a device per rank); gloo stages CUDA tensors through host memory, so on a GPU this measures the packing on
the device and that staging, not NVLink.

    python -m benchmarks.weight_transfer_wire [--device cuda] [--hidden 2048 --layers 8] [--receivers 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rollout.weight_transfer import BucketReceiver, BucketSender, TransferGroup, plan_buckets, tensor_meta

RESULTS = Path(__file__).parent / "results" / "weight_transfer_wire_{device}.json"


def model_weights(hidden: int, layers: int, vocab: int, dtype: torch.dtype, device: str
                  ) -> list[tuple[str, torch.Tensor]]:
    """Qwen2-shaped language-model weights (q/k/v with a 1/4 KV width, gate/up/down at 2.7x), seeded."""
    g = torch.Generator(device="cpu").manual_seed(0)
    kv, inter = hidden // 4, int(hidden * 2.7)

    def w(*shape):
        return torch.randn(*shape, generator=g).to(dtype).to(device)

    out = [("model.embed_tokens.weight", w(vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", w(hidden, hidden)), (p + "self_attn.k_proj.weight", w(kv, hidden)),
                (p + "self_attn.v_proj.weight", w(kv, hidden)), (p + "self_attn.o_proj.weight", w(hidden, hidden)),
                (p + "mlp.gate_proj.weight", w(inter, hidden)), (p + "mlp.up_proj.weight", w(inter, hidden)),
                (p + "mlp.down_proj.weight", w(hidden, inter)), (p + "input_layernorm.weight", w(hidden))]
    return out + [("model.norm.weight", w(hidden))]


def member(rank: int, world: int, port: int, args, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    group = TransferGroup(dist.group.WORLD)
    dtype = getattr(torch, args.dtype)
    weights = model_weights(args.hidden, args.layers, args.vocab, dtype, args.device)
    metas = [tensor_meta(n, t) for n, t in weights]
    buckets = plan_buckets(metas, args.bucket_mb << 20)
    times, exact = [], True
    if rank == 0:
        sender = BucketSender(metas, buckets, args.device)
        for _ in range(args.repeats + 1):
            dist.barrier()
            start = time.perf_counter()
            sent = sender.send(group, iter(weights))
            dist.barrier()  # every receiver has loaded
            times.append(time.perf_counter() - start)
    else:
        receiver = BucketReceiver(metas, buckets, args.device)
        got: dict[str, torch.Tensor] = {}

        def load(pairs):
            for name, t in pairs:
                got[name] = t.clone() if receiver.per_bucket else t  # what vLLM's copy into its parameter costs
        for _ in range(args.repeats + 1):
            dist.barrier()
            receiver.receive(group, load)
            if args.device == "cuda":
                torch.cuda.synchronize()
            dist.barrier()
        exact = all(torch.equal(got[n], t) for n, t in weights)
        sent = 0
    queue.put({"rank": rank, "times": times, "bytes": sent, "exact": exact, "buckets": len(buckets)})
    dist.destroy_process_group()


def copy_bandwidth(nbytes: int, device: str, repeats: int = 5) -> float:
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return nbytes / statistics.median(samples)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--bucket-mb", type=int, default=256)
    p.add_argument("--receivers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    from benchmarks.machine import machine, write_result

    world = 1 + args.receivers
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with socket.socket() as sock:  # a free port (no Ray on the GPU machines: not cluster.ray_cluster's)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = [ctx.Process(target=member, args=(r, world, port, args, queue)) for r in range(world)]
    for proc in procs:
        proc.start()
    reports = sorted((queue.get(timeout=600) for _ in procs), key=lambda r: r["rank"])
    for proc in procs:
        proc.join()
    sender = reports[0]
    sync_s = statistics.median(sender["times"][1:])
    bound_s = sender["bytes"] / copy_bandwidth(sender["bytes"], args.device)
    row = {"device": args.device, "dtype": args.dtype, "receivers": args.receivers, "bucket_mb": args.bucket_mb,
           "buckets": sender["buckets"], "bytes": sender["bytes"], "sync_s": sync_s, "first_sync_s": sender["times"][0],
           "copy_bound_s": bound_s, "ratio_to_bound": sync_s / bound_s,
           "bit_exact_on_every_receiver": all(r["exact"] for r in reports[1:]),
           "shape": {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab}}
    print(f"{args.device}: {row['bytes'] / 1e6:.0f} MB in {row['buckets']} buckets to {args.receivers} receiver(s): "
          f"{sync_s:.3f} s, {row['ratio_to_bound']:.1f}x the copy bound ({bound_s * 1e3:.1f} ms); "
          f"bit-exact: {row['bit_exact_on_every_receiver']}")
    info = machine("torch")
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    write_result({"benchmark": "weight_transfer_wire", "machine": info, "runs": [row]},
                 args.out.format(device=args.device))


if __name__ == "__main__":
    main()
