"""`qthink train`: start the roles, run the configured stages (sft, grpo), checkpoint, evaluate, export.

With no model and no data configured this is the embedded demo: the tiny Qwen2.5-VL and the synthetic
benchmark are built (once, cached), SFT targets come from the template teacher, and the run ends with
held-out SRCC/PLCC for the untrained model, after SFT and after GRPO.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import ray

from cluster import placement
from cluster.checkpoint import CheckpointStore
from cluster.config import QThinkConfig, check_train_config, config_to_yaml, save_resolved, write_model_settings
from cluster.evaluation import evaluate, media_options, write_report
from cluster.ray_cluster import init_ray
from cluster.run_log import RunLog, plot_curves
from rewards import get_preset
from rewards.metrics import srcc_gain_ci
from rollout.manifest import ManifestReader


def with_demo_inputs(cfg: QThinkConfig) -> QThinkConfig:
    """The embedded demo's tiny model and synthetic data (rollout/demo) where the run names none."""
    if cfg.model.path and cfg.data.train:
        return cfg
    from rollout.demo.prepare import prepare_demo

    built = prepare_demo(cfg.demo, cfg.train.seed, model=not cfg.model.path, data=not cfg.data.train,
                         progress=cfg.logging.progress_bar)
    data = cfg.data if cfg.data.train else dataclasses.replace(
        cfg.data, train=built.train, sft=cfg.data.sft or built.sft, test=cfg.data.test or list(built.test))
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=cfg.model.path or built.model),
                               data=data)


class Run:
    """The live roles and the driver's resumable state (stage, step, policy version, data cursors)."""

    def __init__(self, cfg: QThinkConfig, resume: bool):
        from transformers import AutoProcessor

        self.cfg, self.out = cfg, Path(cfg.train.output_dir)
        save_resolved(cfg, self.out)
        self.log = RunLog(self.out, cfg.logging, cfg)
        init_ray(dataclasses.replace(cfg.cluster, num_cpus=cfg.cluster.num_cpus or max(
            placement.logical_cpus_needed(cfg), 2)))
        placement.check_cluster_holds(cfg)  # in seconds, before any engine spends a minute starting
        self.model_dir = cfg.model.path
        self.processor = AutoProcessor.from_pretrained(self.model_dir)
        self.preset = get_preset(cfg.reward.preset)
        self.request_context = ray.put((self.preset, cfg))  # read by every media task (cluster/remote_media.py)
        self.temporal = cfg.reward.temporal and "temporal" in self.preset.component_names
        options = media_options(cfg)
        self.train_reader = ManifestReader(cfg.data.train, seed=cfg.train.seed, options=options)
        self.sft_reader = (ManifestReader(cfg.data.sft, seed=cfg.train.seed, options=options)
                           if "sft" in cfg.train.stages else None)
        self.rollout = placement.rollout_pool(cfg, self.model_dir)
        self.learner = placement.learner_group(cfg, self.model_dir)
        self.rewards = placement.reward_pool(cfg, self.preset)
        self.store = CheckpointStore(cfg.train.checkpoint_dir or str(self.out / "checkpoints"), cfg.train.keep_last)
        self.stage, self.step, self.version, self.evals = cfg.train.stages[0], 0, 0, {}
        self.global_step = 0
        latest = self.store.latest() if resume else None
        if resume and latest is None:
            print(f"--resume: no complete checkpoint under {self.store.root}: starting from the beginning")
        if latest is not None:
            state = self.store.load(latest, lambda d: self.learner.load_state(d, "learner"))
            self.stage, self.step, self.version, self.evals = (state["stage"], state["step"], state["version"],
                                                               state["evals"])
            self.global_step = latest
            self.train_reader.load_state_dict(state["train_cursor"])
            if self.sft_reader is not None and state.get("sft_cursor"):
                self.sft_reader.load_state_dict(state["sft_cursor"])
            self.sync_weights()
            print(f"resumed from checkpoint step {latest}: stage {self.stage}, step {self.step}")

    def sync_weights(self) -> float:
        return self.rollout.broadcast_weights(self.learner, version=self.version)

    def evaluate(self, name: str) -> dict | None:
        c = self.cfg
        if not c.data.test:  # recorded as not measured: an SRCC of 0 here would read as a measurement
            self.evals[name] = {}
            return None
        report = evaluate(self.rollout, c.data.test, self.preset, c, c.train.eval_samples, limit=c.train.eval_limit)
        write_report(report, self.out / "eval" / f"{name}.json", self.out / "eval" / f"{name}.png", name)
        self.log.save_samples(name, report["items"][:32])
        overall = report["metrics"]["overall"]
        summary = {k: float(overall.get(k, 0.0)) for k in ("srcc", "plcc_logistic", "krcc", "rmse")}
        summary["parse_failure_rate"] = report["parse_failure_rate"]
        summary["datasets"] = {k: g["srcc"] for k, g in report["metrics"]["groups"].items()}
        if report["pristine_above_worst"]:
            summary["pristine_above_worst"] = report["pristine_above_worst"]["fraction"]
        previous = self.out / "eval" / f"{self._previous_eval(name)}.json"
        if name.startswith("after-") and previous.exists():
            summary["gain"] = {"over": self._previous_eval(name),
                               "srcc": srcc_gains(json.loads(previous.read_text())["items"], report["items"])}
        self.evals[name] = summary
        self.log.log("eval", self.global_step, summary)
        return report

    def _previous_eval(self, name: str) -> str:
        """The stage-end evaluation before `name` (after-grpo -> after-sft -> untrained)."""
        ends = ["untrained"] + [f"after-{s}" for s in self.cfg.train.stages]
        return ends[max(0, ends.index(name) - 1)] if name in ends else "untrained"

    def after_step(self, stage: str, next_cursor: dict | None = None) -> None:
        """Periodic evaluation and checkpoint; `next_cursor` is the reader position before a batch that
        was drawn ahead (one-step-off), so a resume draws it again instead of skipping it."""
        self.global_step += 1
        c = self.cfg.train
        if c.eval_every and self.step % c.eval_every == 0 and self.step < self._stage_total(stage):
            if stage == "sft":
                self.sync_weights()
            self.evaluate(f"{stage}-step{self.step}")
        if c.save_every and self.global_step % c.save_every == 0:
            self.save(stage, next_cursor)

    def _stage_total(self, stage: str) -> int:
        return self.cfg.train.sft_steps if stage == "sft" else self.cfg.train.grpo_steps

    def save(self, stage: str, next_cursor: dict | None = None) -> str:
        state = {"stage": stage, "step": self.step, "version": self.version, "evals": self.evals,
                 "train_cursor": next_cursor or self.train_reader.state_dict(),
                 "sft_cursor": self.sft_reader.state_dict() if self.sft_reader is not None else None,
                 "time": time.time()}
        return self.store.save(self.global_step, state, config_to_yaml(self.cfg),
                               lambda d: self.learner.save_state(d, "learner"))


def train(cfg: QThinkConfig, resume: bool = False) -> dict:
    from cluster.grpo import grpo_stage
    from cluster.sft import sft_stage

    check_train_config(cfg)
    cfg = with_demo_inputs(cfg)
    run = Run(cfg, resume)
    stages = cfg.train.stages
    if "untrained" not in run.evals and run.global_step == 0:
        run.evaluate("untrained")
    for stage in stages[stages.index(run.stage):]:
        if stage != run.stage:
            run.stage, run.step = stage, 0
        if stage == "grpo" and run.step == 0:  # KL towards the model GRPO starts from (the SFT one)
            run.learner.reset_reference()
        {"sft": sft_stage, "grpo": grpo_stage}[stage](run)
        if f"after-{stage}" not in run.evals:
            run.evaluate(f"after-{stage}")
            run.save(stage)
    final = run.out / "final"
    final.mkdir(parents=True, exist_ok=True)
    run.learner.save_hf(str(final))
    write_model_settings(run.cfg, final)  # eval, serve and distill prompt it as it was trained
    plot_curves(run.log.metrics_path, run.out / "curves.png")
    (run.out / "summary.json").write_text(json.dumps(run.evals, indent=1))
    run.log.close()
    print(summary_table(run.evals))
    readers = {"train": run.train_reader, "sft": run.sft_reader}
    print("unreadable media skipped: " + ", ".join(f"{name} {r.skipped} {dict(r.skip_counts)}"
                                                   for name, r in readers.items() if r is not None))
    ray.shutdown()
    return run.evals


def srcc_gains(before: list[dict], after: list[dict]) -> dict:
    """Per dataset, SRCC after - before on the items both evaluations scored, with a 95% paired bootstrap CI."""
    previous = {item["id"]: item["pred"] for item in before}
    common = [item for item in after if item["id"] in previous]
    gains = {}
    for dataset in sorted({item["dataset"] for item in common}):
        items = [item for item in common if item["dataset"] == dataset]
        gains[dataset] = srcc_gain_ci([previous[i["id"]] for i in items], [i["pred"] for i in items],
                                      [i["mos"] for i in items])
    return gains


def summary_table(evals: dict) -> str:
    """SRCC per held-out dataset (one column when there is one), PLCC overall, the pristine ordering where
    measured, then each stage's SRCC gain over the one before with its interval."""
    if not any(evals.values()):
        return "held-out: not evaluated (data.test is empty)"
    names = [k for k in ["untrained"] + [k for k in evals if k.startswith("after-")] if evals.get(k)]
    datasets = sorted({d for k in names for d in evals[k].get("datasets", {})})
    columns = [f"SRCC {d}" for d in datasets] if len(datasets) > 1 else ["SRCC"]
    pristine = any("pristine_above_worst" in evals[k] for k in names)
    header = ["held-out", *columns, "PLCC", *(["pristine>lvl5"] if pristine else []), "parse fail"]
    widths = [max(12, len(h) + 2) for h in header]
    lines = ["".join(f"{h:<{widths[0]}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, widths)))]
    for name in names:
        e = evals[name]
        cells = [e["datasets"][d] for d in datasets] if len(datasets) > 1 else [e["srcc"]]
        row = [f"{c:.3f}" for c in cells] + [f"{e['plcc_logistic']:.3f}"]
        row += [f"{e['pristine_above_worst']:.0%}" if "pristine_above_worst" in e else "-"] if pristine else []
        row.append(f"{e['parse_failure_rate']:.1%}")
        lines.append(f"{name:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths[1:])))
    for name in names:
        gain = evals[name].get("gain")
        if gain:
            parts = [f"{d} {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" for d, g in gain["srcc"].items()]
            lines.append(f"{name} - {gain['over']} SRCC (95% paired bootstrap CI): " + "; ".join(parts))
    return "\n".join(lines)
