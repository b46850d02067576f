"""`qthink train` end to end in subprocesses: a short run; the demo one step off with corrupt media (slow;
killed workers, learner ranks and drivers are in test_faults.py)."""

import json
import math
import shutil

import pytest

from train_runs import corrupt_tenth, records, train_args

pytestmark = pytest.mark.slow

STEP_KEYS = ["reward", "reward/format", "reward/regression", "reward/rank", "reward/consistency", "reward/temporal",
             "parse_failures", "response_length", "kl", "clip_frac", "entropy", "grad_norm", "srcc", "plcc",
             "tokens_per_s", "sync_s", "skipped_media", "rollout_logprob_gap"]


def test_short_run_logs_every_metric_checkpoints_and_exports_a_loadable_model(tmp_path, shared, start):
    out = tmp_path / "run"
    proc = start("train", *train_args(out, shared), "demo.sft_images=8")  # + the demo's extra SFT rows
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    grpo = [r for r in records(out, "metrics.jsonl") if r["stage"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2, 3]
    for row in grpo:
        for key in STEP_KEYS:
            assert key in row and math.isfinite(row[key]), key
        # the learner scores the context and distribution the engine sampled from (images and videos): float
        # error only. Before it built vLLM's M-RoPE positions and video timing this was 3.7e-4..4.0e-4.
        assert row["rollout_logprob_gap"] <= 1e-5, row["rollout_logprob_gap"]
    batches = [b for b in records(out, "batches.jsonl") if b["stage"] == "grpo"]
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
    # final/ records how it was prompted (the short prompt here): eval asks it the same way unasked
    assert json.loads((out / "final" / "qthink.json").read_text())["data.prompt_style"] == "short"
    ev = start("eval", "--model", str(out / "final"), "--data", str(test_manifest), "--out", str(report),
                 "rollout.max_tokens=16")
    table, _ = ev.communicate(timeout=600)
    assert ev.returncode == 0, table[-3000:]
    assert "SRCC" in table and "overall" in table and "parse failures" in table
    data = json.loads(report.read_text())
    assert data["metrics"]["overall"]["n"] == len(data["items"]) > 0
    assert report.with_suffix(".png").exists()


@pytest.mark.faults
def test_demo_with_a_tenth_of_its_media_corrupt_completes_one_step_off_and_reports_what_it_skipped(
        tmp_path, shared, start):
    from cluster.cli import DEMO_CONFIG
    from cluster.config import load_config
    from cluster.pipeline import with_demo_inputs

    out, data = tmp_path / "run", {"tiny": shared["tiny"], "synth": tmp_path / "synth"}
    # 24 draws per stage: at least one full epoch of the 25 rows (less the corrupt ones) in SFT and in GRPO
    args = train_args(out, data, grpo_steps=6, save_every=0) + [
        "train.sft_batch_size=12", "train.one_step_off=true", "demo.vision_pretrain_steps=20"]
    # the demo's own data, as `qthink train` builds it: synthetic set + template-teacher SFT rows on its files
    broken = corrupt_tenth(with_demo_inputs(load_config(DEMO_CONFIG, args)).data.train)
    proc = start("train", *args)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    metrics = records(out, "metrics.jsonl")
    sft, grpo = ([r for r in metrics if r["stage"] == stage] for stage in ("sft", "grpo"))
    assert [r["step"] for r in sft] == [1, 2] and [r["step"] for r in grpo] == [1, 2, 3, 4, 5, 6]
    # every corrupt row was met, skipped and counted, in both stages, and the run reports it at its end
    assert sft[-1]["skipped_media"] >= len(broken) and grpo[-1]["skipped_media"] >= len(broken)
    assert (f"unreadable media skipped: train {grpo[-1]['skipped_media']:.0f} " in log
            and f", sft {sft[-1]['skipped_media']:.0f} " in log), log[-1000:]
    # one-step-off: from step 2 on, responses come from the policy one version behind
    assert [r["staleness"] for r in grpo] == [0, 1, 1, 1, 1, 1]
    trained = {p for b in records(out, "batches.jsonl") for p in b["prompt_ids"]}
    assert not trained & {row.id for row in broken}


def test_lora_run_folds_its_sft_adapters_resumes_from_an_adapter_checkpoint_and_exports_a_plain_model(
        tmp_path, shared, start):
    """SFT then GRPO with LoRA: the engine samples from the merged weights (the learner's log-probs equal
    the engine's), GRPO's KL starts at 0 (the SFT adapters were folded into the reference), and a run resumed
    from the checkpoint after grpo step 2 samples step 3 as the first run did: the fold's base weights and the
    adapters came back from the checkpoint."""
    out = tmp_path / "run"
    lora = ["learner.lora.rank=8", "learner.sft_lr=1e-2", "learner.sft_warmup_steps=0", "learner.lr=2e-3",
            "learner.beta=0.04"]  # an SFT that moves the adapters, so the fold matters
    proc = start("train", *train_args(out, shared), *lora)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    grpo = [r for r in records(out, "metrics.jsonl") if r["stage"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2, 3]
    assert all(r["rollout_logprob_gap"] <= 1e-5 for r in grpo), [r["rollout_logprob_gap"] for r in grpo]
    assert grpo[0]["kl"] < 1e-7 < grpo[-1]["kl"]
    checkpoint = out / "checkpoints" / "step_0000004"  # 2 sft steps + grpo step 2
    assert json.loads((checkpoint / "driver_state.json").read_text())["step"] == 2
    assert (checkpoint / "learner" / "learner" / "reference.safetensors").exists()  # the folded base
    from safetensors.torch import load_file

    final = load_file(out / "final" / "model.safetensors")
    assert final and not any("lora" in k for k in final)  # merged: a plain model dir

    resumed_out = tmp_path / "resumed"
    shutil.copytree(checkpoint, resumed_out / "checkpoints" / checkpoint.name)
    proc = start("train", *train_args(resumed_out, shared), *lora, "--resume")
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    assert "resumed from checkpoint step 4" in log
    first = {b["step"]: b for b in records(out, "batches.jsonl") if b["stage"] == "grpo"}
    (again,) = [b for b in records(resumed_out, "batches.jsonl") if b["stage"] == "grpo" and b["step"] == 3]
    assert again["prompt_ids"] == first[3]["prompt_ids"]
    assert again["response_digests"] == first[3]["response_digests"]  # the same policy sampled the same text
    (before,) = [m for m in grpo if m["step"] == 3]
    (after,) = [m for m in records(resumed_out, "metrics.jsonl") if m["stage"] == "grpo" and m["step"] == 3]
    for key in ("kl", "entropy", "grad_norm"):  # the KL sees a base that was not restored: it anchors elsewhere
        assert after[key] == pytest.approx(before[key], rel=1e-3), key
