"""The `qthink` command line: one subcommand per user task, each a thin call into the packages."""

from __future__ import annotations

import argparse
import sys

from cluster.config import ConfigError, config_to_yaml, load_config


def _make_tiny_model(args) -> int:
    from rollout.tiny_model import make_tiny_model

    out = make_tiny_model(args.out, seed=args.seed, shape=args.shape)
    print(f"wrote {args.shape} Qwen2.5-VL (seed {args.seed}) to {out}")
    return 0


def _config_show(args) -> int:
    print(config_to_yaml(load_config(args.config, args.overrides)), end="")
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
    p.set_defaults(func=_make_tiny_model)

    p = sub.add_parser("config", help="inspect the resolved config tree")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print defaults <- --config YAML <- key=value overrides")
    show.add_argument("--config", default=None, help="YAML file")
    show.add_argument("overrides", nargs="*", help="dotted overrides, e.g. learner.lr=1e-6")
    show.set_defaults(func=_config_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"qthink: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
