"""The `qthink` command line: one subcommand per user task, each a thin call into the packages."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cluster.config import ConfigError, PlacementError, check_inputs, config_to_yaml, load_config
from cluster.ray_cluster import use_local_env
from rewards import DEFAULT_PRESET, PRESETS


def _make_tiny_model(args) -> int:
    if args.vision_pretrain_steps:
        from rollout.demo.vision_pretrain import ensure_pretrained_tiny

        out = ensure_pretrained_tiny(args.out, args.seed, args.shape, args.vision_pretrain_steps, args.data_seed)
        print(f"wrote {args.shape} Qwen2.5-VL (seed {args.seed}), vision tower pre-trained "
              f"{args.vision_pretrain_steps} steps (curve: {out / 'vision_pretrain.json'}), to {out}")
        return 0
    from rollout.demo.tiny_model import make_tiny_model

    out = make_tiny_model(args.out, seed=args.seed, shape=args.shape)
    print(f"wrote {args.shape} Qwen2.5-VL (seed {args.seed}) to {out}")
    return 0


def _config_show(args) -> int:
    print(config_to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def _data_import(args) -> int:
    from rollout.importers import import_dataset

    result = import_dataset(args.format, args.root, args.out)
    print(result)
    return 0


def _data_synth(args) -> int:
    from rollout.demo.synthetic import build_synthetic_benchmark

    b = build_synthetic_benchmark(args.out, images=args.images, videos=args.videos, seed=args.seed,
                                  image_size=args.size, video_size=args.size)
    print(f"synthetic benchmark in {b.out_dir}: {b.train_rows} train / {b.test_rows} test rows, "
          f"{b.heldout_generator_rows} held-out-generator rows (held-out sources: {', '.join(b.test_sources)}) "
          f"in {b.seconds:.1f}s")
    return 0


def _data_check(args) -> int:
    from rollout.manifest_check import check_manifest, format_report

    bad = 0
    for path in args.manifests:
        report = check_manifest(path)
        print(format_report(report))
        bad += len(report.unreadable)
    return 1 if (args.strict and bad) else 0


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-cpu.yaml"


def _train(args) -> int:
    from cluster.pipeline import train

    config = args.config
    if config is None and DEMO_CONFIG.exists():
        config = DEMO_CONFIG
        print(f"qthink train: no --config, running the embedded demo ({config})")
    train(load_config(config, args.overrides), resume=args.resume)
    return 0


def _eval(args) -> int:
    from cluster.evaluation import evaluate, format_table, write_report
    from cluster.placement import rollout_pool
    from cluster.ray_cluster import init_ray
    from rewards import get_preset

    cfg = load_config(args.config, args.overrides, model_dir=args.model)
    check_inputs(args.model, args.data)
    init_ray(cfg.cluster)
    pool = rollout_pool(cfg, args.model)
    report = evaluate(pool, args.data, get_preset(cfg.reward.preset), cfg, args.samples)
    print(format_table(report))
    if args.out:
        write_report(report, args.out, str(args.out).rsplit(".", 1)[0] + ".png", title=args.model)
        print(f"wrote {args.out}")
    return 0


def _distill(args) -> int:
    from cluster.distill import teacher_distill
    from rollout.demo.template_teacher import template_distill

    cfg = load_config(args.config, args.overrides, model_dir=None if args.teacher == "template" else args.teacher)
    check_inputs("" if args.teacher == "template" else args.teacher, [args.data])
    if args.teacher == "template":
        stats = template_distill(args.data, args.out, cfg.demo.teacher)
    else:
        stats = teacher_distill(args.teacher, args.data, args.out, cfg, tolerance=args.tolerance,
                                samples=args.samples)
    print(json.dumps(stats))
    return 0


def _reward(args) -> int:
    from rewards import get_preset, score_jsonl

    summary = score_jsonl(get_preset(args.preset), args.inp, args.out, group_size=args.group_size)
    print(summary)
    return 0


def _serve(args) -> int:
    from cluster.serve import serve_main

    serve_main(args.model, args.config, args.overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qthink", description="Ray-distributed GRPO for visual quality assessment with reasoning."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("make-tiny-model", help="build a random-weight Qwen2.5-VL + local tokenizer/processor")
    p.add_argument("--out", required=True, help="output model dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", default="tiny", choices=["tiny", "small", "3b"])
    p.add_argument("--vision-pretrain-steps", type=int, default=0,
                   help="pre-train the vision tower on distortion-ranked pairs (what the demo starts from)")
    p.add_argument("--data-seed", type=int, default=0, help="synthetic benchmark whose training pictures it uses")
    p.set_defaults(func=_make_tiny_model)

    p = sub.add_parser("train", help="SFT cold start + GRPO on Ray (no --config: the embedded CPU demo)")
    p.add_argument("--config", default=None, help="YAML config (configs/*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.grpo_steps=20")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="SRCC/PLCC/KRCC/RMSE of a model dir on held-out manifests")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, nargs="+", help="parquet manifests")
    p.add_argument("--out", default=None, help="report JSON (a scatter PNG is written beside it)")
    p.add_argument("--samples", type=int, default=1, help="1: greedy; N: mean of N sampled scores")
    p.add_argument("--config", default=None)
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=_eval)

    p = sub.add_parser("distill", help="SFT reasoning data from a teacher (kept when its score is near the MOS)")
    p.add_argument("--teacher", required=True, help="teacher model dir, or 'template' for the synthetic set "
                   "(demo.teacher=misreading|exact picks which)")
    p.add_argument("--data", required=True, help="input manifest")
    p.add_argument("--out", required=True, help="output manifest with a reasoning column")
    p.add_argument("--tolerance", type=float, default=0.5)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--config", default=None)
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=_distill)

    p = sub.add_parser("serve", help="the model behind an autoscaled Ray Serve endpoint (/v1/score, OpenAI chat)")
    p.add_argument("--model", required=True, help="HF model dir (e.g. runs/demo/final)")
    p.add_argument("--config", default=None, help="YAML config (its serve/rollout/reward sections are used)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. serve.port=8001 serve.max_replicas=4")
    p.set_defaults(func=_serve)

    p = sub.add_parser("reward", help="score a JSONL batch of responses with a reward preset")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))
    p.add_argument("--group-size", type=int, default=None,
                   help="G responses per group: a prompt id in two adjacent groups stays two groups")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_reward)

    p = sub.add_parser("data", help="datasets: import annotation layouts, build the synthetic set, check media")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    d = data_sub.add_parser("import", help="turn a published dataset layout into a qthink manifest")
    from rollout.importers import FORMATS

    d.add_argument("--format", required=True, choices=sorted(FORMATS))
    d.add_argument("--root", required=True, help="the dataset folder as published")
    d.add_argument("--out", required=True, help="output parquet manifest")
    d.set_defaults(func=_data_import)
    d = data_sub.add_parser("synth", help="build the synthetic distortion benchmark (images + videos)")
    d.add_argument("--out", required=True)
    d.add_argument("--images", type=int, default=540)
    d.add_argument("--videos", type=int, default=90)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--size", type=int, default=112, help="image and video side in pixels (even)")
    d.set_defaults(func=_data_synth)
    d = data_sub.add_parser("check", help="open every row's media; list unreadable rows with their reason")
    d.add_argument("manifests", nargs="+")
    d.add_argument("--strict", action="store_true", help="exit 1 when any row is unreadable")
    d.set_defaults(func=_data_check)

    p = sub.add_parser("config", help="inspect the resolved config tree")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print defaults <- --config YAML <- key=value overrides")
    show.add_argument("--config", default=None, help="YAML file")
    show.add_argument("overrides", nargs="*", help="dotted overrides, e.g. learner.lr=1e-6")
    show.set_defaults(func=_config_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_local_env()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:  # a placement error too: the fix is a smaller config or a bigger cluster
        kind = "placement error" if isinstance(e, PlacementError) else "config error"
        print(f"qthink: {kind}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
