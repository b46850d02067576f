"""Where a run's numbers go: metrics.jsonl and TensorBoard always, W&B / MLflow when configured, a progress
bar on the terminal, sample rollouts at each evaluation, and PNG plots at the end."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from cluster.config import LoggingConfig, QThinkConfig


def _finite(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


class RunLog:
    def __init__(self, out_dir: str | Path, cfg: LoggingConfig, full_config: QThinkConfig | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.metrics_path = self.out_dir / "metrics.jsonl"
        self.tb = self.wandb = self.mlflow = self.bar = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        if cfg.wandb_project:
            import wandb  # optional dependency: configured, so it must be installed

            self.wandb = wandb.init(project=cfg.wandb_project, dir=str(self.out_dir),
                                    config=None if full_config is None else _as_dict(full_config))
        if cfg.mlflow_uri:
            import mlflow

            mlflow.set_tracking_uri(cfg.mlflow_uri)
            mlflow.start_run()
            self.mlflow = mlflow

    def start_stage(self, stage: str, start: int, total: int) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        if self.cfg.progress_bar and total > start:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=stage, dynamic_ncols=True)

    def log(self, stage: str, step: int, metrics: dict) -> None:
        clean = _finite(metrics)
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"stage": stage, "step": step, "time": time.time(), **clean}) + "\n")
        for k, v in clean.items():
            if self.tb is not None:
                self.tb.add_scalar(f"{stage}/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"{stage}/{k}": v for k, v in clean.items()}, step=step)
        if self.mlflow is not None:
            self.mlflow.log_metrics({f"{stage}.{k}": v for k, v in clean.items()}, step=step)
        if stage in ("sft", "grpo"):
            shown = {k: f"{clean[k]:.3g}" for k in ("loss", "reward", "srcc", "tokens_per_s") if k in clean}
            if self.bar is not None:
                self.bar.set_postfix(shown)
                self.bar.update(1)
            else:  # plain lines for job logs (`ray job logs`) and CI
                print(f"[{stage} step {step}] " + " ".join(f"{k}={v}" for k, v in shown.items()), flush=True)

    def record_batch(self, stage: str, step: int, record: dict) -> None:
        """Which prompts a step trained on and what they earned: resume and fault tests check these."""
        with (self.out_dir / "batches.jsonl").open("a") as f:
            f.write(json.dumps({"stage": stage, "step": step, **record}) + "\n")

    def save_samples(self, name: str, rows: list[dict]) -> Path:
        path = self.out_dir / "samples" / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        if self.mlflow is not None:
            self.mlflow.end_run()


def _as_dict(config) -> dict:
    import dataclasses

    return dataclasses.asdict(config)


def read_metrics(path: str | Path) -> list[dict]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def plot_curves(metrics_path: str | Path, out_png: str | Path) -> Path:
    """Reward and SRCC against step for each stage (training batches and held-out evaluations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    panels = [("grpo", "reward", "GRPO mean reward"), ("grpo", "srcc", "GRPO batch SRCC"),
              ("sft", "loss", "SFT loss"), ("eval", "srcc", "held-out SRCC")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (stage, key, title) in zip(axes, panels):
        pts = [(r["step"], r[key]) for r in rows if r.get("stage") == stage and key in r]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 50 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_scatter(pred, mos, out_png: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(mos, pred, s=10, alpha=0.6)
    ax.plot([1, 5], [1, 5], color="grey", lw=1)
    ax.set_xlabel("MOS")
    ax.set_ylabel("predicted score")
    ax.set_title(title)
    ax.set_xlim(0.8, 5.2)
    ax.set_ylim(0.8, 5.2)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
