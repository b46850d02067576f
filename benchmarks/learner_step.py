"""Learner step: seconds per GRPO step, tokens/s and peak memory, plain vs shared prefix vs LoRA. On a GPU the
Qwen2.5-VL-3B-shaped policy; on this CPU small shapes.

What runs is the project's learner: `PolicyTrainer` (its engine from `build_engine`: DeepSpeed ZeRO-2,
torch AdamW) and `train_step` (micro-batched GRPO loss through `sequence_logprobs`); the weight sync has
benchmarks of its own (weight_sync.py, weight_transfer_wire.py). The model is a `rollout/demo/tiny_model.py` shape
(`3b`: Qwen2.5-VL-3B-Instruct's published config, 36 x 2048 text layers, 151,936 vocab, tied embeddings, a
32-block 1280-wide vision tower) with random weights, built directly on the device: writing and re-reading
7.5 GB of random weights would time the disk, so `from_pretrained` hands the trainer the built model and
nothing else of `PolicyTrainer.__init__` changes. The processor keeps Qwen's own pixel limits, so a 448x448
image is 32x32 patches -> 256 image tokens (`--image-side 112`: 16 tokens).

Variants (`VARIANTS`): `plain` scores each sequence in its own row; `shared-prefix` runs each group as one row
`[prompt | r1 | ... | rG]` (the vision tower and prompt once per group); `lora` adds adapters (`--lora-rank`,
language and vision) on the shared-prefix forward; the GPU memory variants (`full`, `frozen-vision`, ...) are
the full fine-tuning setups measured on an H100 before. Batch: B prompts x G responses of R tokens, one image
per prompt, in the project's `qthink` prompt, GRPO advantages from random rewards, beta 0. Each variant runs
in its own process, so one that runs out of memory leaves nothing behind, and its peak memory is its own (GPU:
max allocated; CPU: the process's peak resident set, model build included). Step time is the median after one
warm-up step. `tokens_per_s` counts every sequence's prompt + response tokens (the same work unit for every
variant); `model_tflops` counts the tokens the forward really processes (a shared row holds its prompt once)
at 6 x parameters for weights that train, 4 x for frozen weights gradients flow through (LoRA), 2 x for a
frozen vision tower's forward; attention and recomputation are not counted. The export is timed against bytes
/ the device-to-host bandwidth into pinned memory (the bound).

    python -m benchmarks.learner_step [--variants plain shared-prefix lora] [--shape 3b] [--prompts 8]
                                      [--group 8] [--response 256] [--image-side 448] [--steps 3] [--dtype bf16]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from benchmarks.machine import machine, write_result
from cluster.ray_cluster import free_port
from learners.config import LoraConfig

RESULTS = Path(__file__).parent / "results" / "learner_step.json"
VARIANTS = {  # name: LearnerConfig overrides
    "plain": dict(shared_prefix=False, micro_batch_size=8),
    "shared-prefix": dict(shared_prefix=True, micro_batch_size=8),
    "lora": dict(shared_prefix=True, micro_batch_size=8, lora=LoraConfig()),  # rank and alpha: --lora-rank
    # full fine-tuning of the 3B shape on one 80 GB GPU, the likeliest to fit first
    "frozen-vision": dict(freeze_vision=True, gradient_checkpointing=True, micro_batch_size=8),
    "frozen-vision-no-ckpt": dict(freeze_vision=True, gradient_checkpointing=False, micro_batch_size=2),
    "full": dict(freeze_vision=False, gradient_checkpointing=True, micro_batch_size=8),
}


def init_process_group(device: str) -> None:
    """World size 1, as `Learner.setup` does for one rank (NCCL on a GPU, gloo on the CPU)."""
    port = free_port()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                      DS_ACCELERATOR=device)
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")


def build_model(shape: str, out: Path, dtype: torch.dtype):
    """Writes the config and processor to `out` (no weights); returns the random-weight model, built on
    the device."""
    from transformers import (
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from rollout.demo.tiny_model import CHAT_TEMPLATE, SHAPES, build_config, build_tokenizer

    tokenizer = build_tokenizer(SHAPES[shape]["vocab"])
    config = build_config(shape, tokenizer)
    config.save_pretrained(out)
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
                        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE).save_pretrained(out)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        return Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)


def grpo_batch(model_dir: Path, prompts: int, group: int, response: int, image_side: int):
    """B prompts (one random square image each) x G random responses of `response` tokens."""
    from transformers import AutoProcessor

    from learners.losses import group_advantages
    from rollout.engine import vllm_input
    from rollout.records import RolloutRequest, RolloutSample

    proc = AutoProcessor.from_pretrained(model_dir)
    rng = np.random.default_rng(0)
    advantages = group_advantages(rng.random(prompts * group), group)
    media, seqs = {}, []
    for k in range(prompts):
        image = rng.integers(0, 256, (image_side, image_side, 3), dtype=np.uint8)
        media[f"p{k}"] = request = RolloutRequest(f"p{k}", "image", image=image)
        text = vllm_input(request, proc)["prompt"]
        prompt = proc(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
        for j in range(group):
            ids = rng.integers(20, len(proc.tokenizer) - 20, size=response).tolist()
            seqs.append(RolloutSample(f"p{k}", prompt, ids, advantage=float(advantages[k * group + j])))
    return seqs, media


def model_flops(model, cfg, seqs, media_tokens_per_image: int) -> float:
    """What the forward and backward really process: 6 x params x tokens for weights that train, 4 x for
    frozen weights the gradient flows through (LoRA), 2 x for a frozen tower's forward; lm_head on response
    tokens. A shared-prefix row holds its prompt and image once."""
    base = model.get_base_model() if cfg.lora.rank else model
    text, visual = base.model.language_model, base.model.visual
    vocab, hidden = text.embed_tokens.weight.shape
    text_params = sum(p.numel() for n, p in text.named_parameters() if "lora_" not in n) - vocab * hidden
    vision_params = sum(p.numel() for n, p in visual.named_parameters() if "lora_" not in n)
    responses = sum(len(s.token_ids) for s in seqs)
    rows = len({s.prompt_id for s in seqs}) if cfg.shared_prefix else len(seqs)
    tokens = rows * len(seqs[0].prompt_token_ids) + responses
    patches = rows * media_tokens_per_image * 4  # spatial_merge 2x2: 4 patches per image token
    text_factor = 4 if cfg.lora.rank else 6
    vision_factor = 2 if cfg.freeze_vision else 4 if cfg.lora.rank else 6
    return text_factor * text_params * tokens + 6 * vocab * hidden * responses + vision_factor * vision_params * patches


def run_variant(args, name: str) -> dict:
    """One variant, in this process: build, warm up, time `args.steps` steps."""
    from learners.config import LearnerConfig
    from learners.policy_trainer import PolicyTrainer, shard_batch

    on_gpu = torch.cuda.is_available()
    init_process_group("cuda" if on_gpu else "cpu")
    overrides = dict(VARIANTS[name])
    if "lora" in overrides:
        overrides["lora"] = LoraConfig(rank=args.lora_rank, alpha=2.0 * args.lora_rank)
    cfg = LearnerConfig(num_ranks=1, gpus_per_rank=int(on_gpu), zero_stage=2, dtype=args.dtype, lr=1e-6, beta=0.0,
                        **overrides)
    model_dir = Path(tempfile.mkdtemp(prefix="qthink-learner-step-"))
    built = build_model(args.shape, model_dir, torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    with mock.patch("transformers.AutoModelForImageTextToText.from_pretrained", return_value=built):
        trainer = PolicyTrainer(str(model_dir), cfg)
    model = trainer.engine.module  # with LoRA, the peft-wrapped model
    seqs, media = grpo_batch(model_dir, args.prompts, args.group, args.response, args.image_side)
    shard = shard_batch(seqs, media, 1, cfg, args.response)[0]
    image_tokens = sum(t == model.config.image_token_id for t in seqs[0].prompt_token_ids)
    row = {"config": _jsonable(overrides), "params": sum(p.numel() for p in built.parameters()),
           "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "sequences": len(seqs), "prompt_tokens": len(seqs[0].prompt_token_ids), "image_tokens": int(image_tokens),
           "response_tokens": args.response, "micro_batches": len(shard.micro_batches)}
    tokens = sum(len(s.prompt_token_ids) + len(s.token_ids) for s in seqs)
    times, losses = [], []
    for step in range(args.steps + 1):
        if step == 1 and on_gpu:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        metrics = trainer.train_step(shard)
        if on_gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        losses.append(metrics["loss"])
        print(f"[{name}] step {step}: {times[-1]:.2f} s, loss {metrics['loss']:.4f}, "
              f"grad_norm {metrics['grad_norm']:.3f}", flush=True)
    step_s = statistics.median(times[1:])
    row.update(step_s=step_s, step_s_all=times, losses=losses, tokens_per_step=tokens,
               tokens_per_s=tokens / step_s, response_tokens_per_s=len(seqs) * args.response / step_s,
               model_tflops=model_flops(model, cfg, seqs, image_tokens) / step_s / 1e12)
    if on_gpu:
        row.update(peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
                   peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30)
    else:
        row.update(peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)  # KiB on Linux
    return row


def _jsonable(overrides: dict) -> dict:
    return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in overrides.items()}


def gpu_description() -> dict:
    if not torch.cuda.is_available():
        return {"gpu": None}
    p = torch.cuda.get_device_properties(0)
    return {"gpu": p.name, "gpu_memory_gib": round(p.total_memory / 2**30, 1), "sms": p.multi_processor_count,
            "cuda": torch.version.cuda}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["plain", "shared-prefix", "lora"], choices=list(VARIANTS))
    p.add_argument("--shape", default="3b", help="rollout.demo.tiny_model shape: tiny | small | medium | 3b")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--response", type=int, default=256)
    p.add_argument("--image-side", type=int, default=448, help="pixels: 448 -> 256 image tokens, 112 -> 16")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--lora-rank", type=int, default=64, help="the lora variant's rank (alpha: 2 x rank)")
    p.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    p.add_argument("--out", default=str(RESULTS), help="runs of other shapes already there are kept")
    p.add_argument("--variant-out", help=argparse.SUPPRESS)  # set by the parent: run one variant here
    args = p.parse_args()

    if args.variant_out:
        try:
            row = run_variant(args, args.variants[0])
        except torch.OutOfMemoryError as e:
            row = {"config": _jsonable(VARIANTS[args.variants[0]]),
                   "error": f"out of GPU memory: {str(e).splitlines()[0]}"}
        Path(args.variant_out).write_text(json.dumps({"device": gpu_description(), **row}))
        return

    setup = f"{args.shape}-{args.image_side}px"
    result = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {"benchmark": "learner_step"}
    result["machine"] = machine("torch", "transformers", "deepspeed")
    run = {"shape": args.shape, "dtype": args.dtype, "batch": {
        "prompts": args.prompts, "group": args.group, "response": args.response,
        "image": f"{args.image_side}x{args.image_side}"},
        "learner": f"PolicyTrainer: DeepSpeed ZeRO-2, {args.dtype}, torch AdamW, beta 0, 1 rank", "variants": {}}
    result.setdefault("runs", {})[setup] = run
    for name in args.variants:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            cmd = [sys.executable, "-m", "benchmarks.learner_step", "--variants", name, "--variant-out", f.name,
                   "--shape", args.shape, "--prompts", str(args.prompts), "--group", str(args.group),
                   "--response", str(args.response), "--image-side", str(args.image_side), "--dtype", args.dtype,
                   "--lora-rank", str(args.lora_rank), "--steps", str(args.steps)]
            rc = subprocess.run(cmd).returncode
            text = Path(f.name).read_text()
            row = json.loads(text) if text else {"error": f"exit code {rc}"}
        result["machine"].update(row.pop("device", {}))  # from the variant: a CUDA context here would take GPU memory
        run["variants"][name] = row
        write_result(result, args.out)  # after each variant: a run cut short keeps what it measured
    print(table(result))


def table(result: dict) -> str:
    """Markdown rows: one per setup and variant, with the ratio of step time to the setup's `plain`."""
    lines = ["| setup | variant | trainable | step s | vs plain | tokens/s | model TFLOP/s | peak GiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for setup, run in result["runs"].items():
        plain = run["variants"].get("plain", {}).get("step_s")
        for name, r in run["variants"].items():
            if "error" in r:
                lines.append(f"| {setup} | {name} | {r['error']} |")
                continue
            peak = r.get("peak_allocated_gib", r.get("peak_rss_gib", float("nan")))
            ratio = f"{r['step_s'] / plain:.2f}" if plain else "-"
            lines.append(f"| {setup} | {name} | {r['trainable_params'] / 1e6:.3g}M | {r['step_s']:.2f} | {ratio} | "
                         f"{r['tokens_per_s']:.0f} | {r['model_tflops']:.3g} | {peak:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
