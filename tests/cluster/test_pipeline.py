"""`qthink train` end to end in subprocesses: a short run, a run killed mid-way and resumed (slow)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STEP_KEYS = ["reward", "reward/format", "reward/regression", "reward/rank", "reward/consistency", "reward/temporal",
             "parse_failures", "response_length", "kl", "clip_frac", "entropy", "grad_norm", "srcc", "plcc",
             "tokens_per_s", "sync_s", "skipped_media", "rollout_logprob_gap"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return {"tiny": root / "tiny", "synth": root / "synth"}


def _args(out, shared, grpo_steps=3, save_every=2):
    # 16 images + 16 videos: every step is likely to hold a video (and its perturbed copy)
    return ["train", f"train.output_dir={out}", f"model.tiny_dir={shared['tiny']}",
            f"data.synthetic_dir={shared['synth']}", "data.synthetic_images=16", "data.synthetic_videos=16",
            "train.sft_steps=2", "train.sft_batch_size=4", f"train.grpo_steps={grpo_steps}",
            "train.prompts_per_step=4", "rollout.n=2", "rollout.max_tokens=16", "train.eval_limit=6",
            "train.eval_every=0", f"train.save_every={save_every}", "learner.lr=1e-4", "logging.progress_bar=false"]


def _records(out, name):
    path = Path(out) / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _qthink(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "cluster.cli", *args], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_short_run_logs_every_metric_checkpoints_and_exports_a_loadable_model(tmp_path, shared):
    out = tmp_path / "run"
    proc = _qthink(*_args(out, shared))
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    grpo = [r for r in _records(out, "metrics.jsonl") if r["stage"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2, 3]
    for row in grpo:
        for key in STEP_KEYS:
            assert key in row and math.isfinite(row[key]), key
    batches = [b for b in _records(out, "batches.jsonl") if b["stage"] == "grpo"]
    assert any(pid.startswith("vid") for b in batches for pid in b["prompt_ids"])  # videos were trained on
    video_steps = [b for b in batches if any(p.startswith("vid") for p in b["prompt_ids"])]
    assert all(b["responses"] > len(b["prompt_ids"]) * 2 for b in video_steps)  # + perturbed copies
    assert (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("step_*/driver_state.json"))
    assert (out / "config.resolved.yaml").exists() and (out / "curves.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert {"untrained", "after-sft", "after-grpo"} <= set(summary)
    assert "after-grpo" in log  # the three-row table is printed

    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out / "final")  # the final dir loads in transformers
    assert sum(p.numel() for p in model.parameters()) > 0
    # ... and in vLLM: `qthink eval` serves it on a rollout worker and writes the table, JSON and scatter
    test_manifest = next((shared["synth"]).glob("*/test.parquet"))
    report = out / "eval-final.json"
    ev = _qthink("eval", "--model", str(out / "final"), "--data", str(test_manifest), "--out", str(report),
                 "data.prompt_style=short", "rollout.max_tokens=16")
    table, _ = ev.communicate(timeout=600)
    assert ev.returncode == 0, table[-3000:]
    assert "SRCC" in table and "overall" in table and "parse failures" in table
    data = json.loads(report.read_text())
    assert data["metrics"]["overall"]["n"] == len(data["items"]) > 0
    assert report.with_suffix(".png").exists()


def test_killed_run_resumes_at_the_next_step_with_the_same_data_cursor(tmp_path, shared):
    out = tmp_path / "run"
    proc = _qthink(*_args(out, shared, grpo_steps=9, save_every=2))
    deadline = time.time() + 900
    # kill once step 5 was recorded: the checkpoint after grpo step 4 (global step 6) is then complete
    while time.time() < deadline and proc.poll() is None:
        if any(b["stage"] == "grpo" and b["step"] >= 5 for b in _records(out, "batches.jsonl")):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = [b for b in _records(out, "batches.jsonl") if b["stage"] == "grpo"]
    by_step = {b["step"]: b["prompt_ids"] for b in killed}
    state = json.loads(sorted((out / "checkpoints").glob("step_*/driver_state.json"))[-1].read_text())
    assert state["stage"] == "grpo" and state["step"] + 1 in by_step

    resumed = _qthink(*_args(out, shared, grpo_steps=9, save_every=2), "--resume")
    log, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, log[-3000:]
    assert "resumed from checkpoint" in log
    after = [b for b in _records(out, "batches.jsonl") if b["stage"] == "grpo"][len(killed):]
    assert after[0]["step"] == state["step"] + 1  # continues at the next step
    assert after[0]["prompt_ids"] == by_step[state["step"] + 1]  # ... with the same data cursor
    assert [b["step"] for b in after] == list(range(state["step"] + 1, 10))


def test_one_step_off_run_with_ten_percent_corrupt_media_completes_and_counts_what_it_skipped(tmp_path, shared):
    from rollout.manifest import ManifestFile
    from rollout.synthetic import build_synthetic_benchmark

    root = tmp_path / "data"
    build_synthetic_benchmark(root, images=16, videos=16, seed=0)
    rows = ManifestFile(root / "train.parquet").rows
    broken = rows[:: max(1, len(rows) // max(1, len(rows) // 10))][: max(1, len(rows) // 10)]
    for row in broken:  # truncate to a few bytes: "truncated" or "empty" media, never a crash
        path = root / row.uri
        path.write_bytes(path.read_bytes()[:20])
    out = tmp_path / "run"
    args = _args(out, shared, grpo_steps=6, save_every=0) + [f"data.train={root / 'train.parquet'}",
                                                           f"data.test=[{root / 'test.parquet'}]", "train.stages=[grpo]",
                                                           "train.one_step_off=true"]
    proc = _qthink(*args)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    grpo = [r for r in _records(out, "metrics.jsonl") if r["stage"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2, 3, 4, 5, 6]  # 24 draws: at least one full epoch
    assert grpo[-1]["skipped_media"] >= len(broken)  # every corrupt row was met, skipped and counted
    # one-step-off: from step 2 on, responses come from the policy one version behind
    assert [r["staleness"] for r in grpo] == [0, 1, 1, 1, 1, 1]
    trained = {p for b in _records(out, "batches.jsonl") for p in b["prompt_ids"]}
    assert not trained & {row.id for row in broken}
