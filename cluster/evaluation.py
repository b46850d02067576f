"""Held-out evaluation through the rollout workers (the exported weights, never a model in train state:
an early probe saw the same weights score differently in the training process and after export).

An item's score is its answers' group score (`ParsedResponses.group_scores`, the rule training metrics and
Serve use too); answers that do not parse are counted as failures.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import ray

from cluster.config import QThinkConfig
from cluster.placement import near_engines
from cluster.remote_media import Decoded, decode_remote
from rewards import Preset
from rewards.metrics import pristine_above_worst, quality_metrics
from rollout.manifest import ManifestReader, ManifestRow, MediaOptions
from rollout.records import RequestRef


def evaluate(pool, manifests: list[str], preset: Preset, cfg: QThinkConfig, samples: int = 1, limit: int = 0,
             chunk: int = 64) -> dict:
    """Per-dataset and overall SRCC/PLCC/KRCC/RMSE, and how often pristine items beat their sources' level-5
    items where the manifests have both; greedy when samples == 1, else mean of N samples. The media are
    decoded by Ray tasks beside the engines and reach them by reference (cluster/remote_media.py), as in
    training: the driver reads rows and answers, not pixels."""
    context, media, where = ray.put((preset, cfg)), media_options(cfg), near_engines()
    items = []
    skipped = {}
    for path in manifests:
        reader = ManifestReader(path, shuffle=False, options=media)
        rows = reader.rows_of_epoch()
        while not limit or len(items) < limit:
            size = min(chunk, limit - len(items)) if limit else chunk
            taken = [(row, reader.manifest.media_source(index)) for index, row in itertools.islice(rows, size)]
            if not taken:
                break
            batch = []
            for (row, _), (status, ref) in zip(taken, decode_remote(taken, reader.options, context, where)):
                if isinstance(status, Decoded):
                    batch.append((row, RequestRef(row.id, status.media_type, ref, seed=len(batch))))
                else:
                    reader.record_skip(row, *status)
            items += _score(pool, batch, preset, cfg, samples)
        skipped[str(path)] = dict(reader.skip_counts)
    pred = np.array([i["pred"] for i in items], dtype=float)
    mos = np.array([i["mos"] for i in items], dtype=float)
    metrics = quality_metrics(pred, mos, [i["dataset"] for i in items]) if items else {"overall": {}, "groups": {}}
    typed = [k for k, i in enumerate(items) if i["distortion"]]
    if typed:  # what a model learned, type by type (a pooled SRCC hides a type it cannot see)
        metrics["distortions"] = quality_metrics(pred[typed], mos[typed], [
            f"{items[k]['dataset']}/{items[k]['distortion']}" for k in typed])["groups"]
    failures = sum(i["failed"] for i in items) / max(1, sum(i["n"] for i in items))
    pristine = pristine_above_worst(pred, [-1 if i["severity"] is None else i["severity"] for i in items],
                                    [i["source"] for i in items])
    return {"metrics": metrics, "parse_failure_rate": failures, "pristine_above_worst": pristine, "items": items,
            "skipped": skipped, "samples_per_item": samples}


def _score(pool, batch: list[tuple[ManifestRow, RequestRef]], preset: Preset, cfg: QThinkConfig,
           samples: int) -> list[dict]:
    if not batch:
        return []
    temperature = cfg.rollout.temperature if cfg.train.eval_temperature is None else cfg.train.eval_temperature
    overrides = {"temperature": 0.0 if samples == 1 else temperature}
    groups = pool.generate([request for _, request in batch], n=samples, **overrides)
    parsed = preset.parse([s.text for group in groups for s in group])
    scores, failed = parsed.group_scores(samples), parsed.failed.reshape(-1, samples).sum(axis=1)
    return [{"id": row.id, "dataset": row.dataset, "source": row.source, "distortion": row.distortion,
             "severity": row.severity, "mos": row.mos, "pred": float(score), "failed": int(fails), "n": samples,
             "response": group[0].text}
            for (row, _), group, score, fails in zip(batch, groups, scores, failed)]


def media_options(cfg: QThinkConfig) -> MediaOptions:
    return MediaOptions(image_max_pixels=cfg.data.max_pixels, video_num_frames=cfg.data.num_frames,
                        video_max_pixels=cfg.data.max_pixels)


def format_table(report: dict) -> str:
    m = report["metrics"]
    rows = [("overall", m["overall"])] + sorted(m["groups"].items()) + sorted(m.get("distortions", {}).items())
    width = max(16, *(len(name) + 2 for name, _ in rows))
    lines = [f"{'dataset':<{width}}{'n':>6}{'SRCC':>8}{'PLCC':>8}{'KRCC':>8}{'RMSE':>8}"]
    for name, r in rows:
        lines.append(f"{name:<{width}}{r.get('n', 0):>6}{r.get('srcc', 0):>8.3f}{r.get('plcc_logistic', 0):>8.3f}"
                     f"{r.get('krcc', 0):>8.3f}{r.get('rmse', 0):>8.3f}")
    if report.get("pristine_above_worst"):
        p = report["pristine_above_worst"]
        lines.append(f"pristine above level 5 of the same source: {p['fraction']:.1%} of {p['pairs']} pairs")
    lines.append(f"parse failures: {report['parse_failure_rate']:.1%}")
    return "\n".join(lines)


def write_report(report: dict, out_json: str | Path, scatter_png: str | Path | None = None, title: str = "") -> None:
    from cluster.run_log import plot_scatter

    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps({k: v for k, v in report.items()}, indent=1, default=float))
    if scatter_png and report["items"]:
        plot_scatter([i["pred"] for i in report["items"]], [i["mos"] for i in report["items"]], scatter_png,
                     title or f"SRCC {report['metrics']['overall'].get('srcc', 0):.3f}")
