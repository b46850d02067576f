"""`qthink distill`: the template teachers on a synthetic set, and a VLM teacher (the tiny model) served by
a real vLLM rollout worker, whose kept rows must lie within the tolerance of their MOS."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rewards import get_preset
from rollout.demo.distortions import synthetic_mos
from rollout.demo.synthetic import build_synthetic_benchmark
from rollout.demo.template_teacher import MISREAD_LEVELS, STRENGTH
from rollout.manifest import ManifestFile, ManifestReader


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return build_synthetic_benchmark(tmp_path_factory.mktemp("synth"), images=60, videos=4, seed=0)


def _qthink(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True, timeout=timeout)


def _answers(rows):
    return get_preset("qthink").parse([r.reasoning for r in rows])


@pytest.mark.parametrize("teacher", ["exact", "misreading"])
def test_template_teacher_writes_every_row_with_media_readable_from_the_output_folder(synth, tmp_path, teacher):
    out = tmp_path / "sub" / "sft.parquet"
    r = _qthink("distill", "--teacher", "template", "--data", str(synth.train_manifest), "--out", str(out),
                f"demo.teacher={teacher}")
    assert r.returncode == 0, r.stderr[-2000:]
    rows, source = ManifestFile(out).rows, ManifestFile(synth.train_manifest).rows
    assert [x.id for x in rows] == [x.id for x in source] and all(x.reasoning for x in rows)
    answers = _answers(rows)
    assert not answers.failed.any()
    assert any(row.severity == 0 for row in rows)  # pristine crops: "no clear distortion", their own MOS
    for row, answer in zip(rows, answers.pred):
        level = row.severity
        if level == 0:
            assert row.reasoning.startswith("<think>no clear distortion") and answer == pytest.approx(row.mos)
            continue
        if teacher == "misreading" and row.distortion in MISREAD_LEVELS:
            level = min(5, max(1, level + MISREAD_LEVELS[row.distortion]))
        assert row.reasoning.startswith(f"<think>{STRENGTH[level]} "), row.reasoning
        assert answer == pytest.approx(synthetic_mos(row.distortion, level), abs=0.005)
    if teacher == "misreading":  # some rows really are misread
        assert any(abs(a - x.mos) > 0.3 for a, x in zip(answers.pred, rows))
    reader = ManifestReader(out, shuffle=False)  # media paths were rewritten relative to the new folder
    assert sum(1 for _ in reader.iter_epoch()) == len(rows) and reader.skipped == 0


@pytest.mark.slow
def test_vlm_teacher_keeps_only_answers_within_tolerance_and_counts_the_rest(synth, tmp_path):
    from rollout.demo.tiny_model import ensure_tiny_model

    model = ensure_tiny_model(tmp_path / "tiny", seed=0)
    out = tmp_path / "sft.parquet"
    r = _qthink("distill", "--teacher", str(model), "--data", str(synth.test_manifest), "--out", str(out),
                "--tolerance", "1.0", "--samples", "4", "rollout.max_tokens=40", "data.prompt_style=short")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    kept = ManifestFile(out).rows
    assert stats["rows"] == len(ManifestFile(synth.test_manifest).rows)
    assert (0 < stats["kept"] == len(kept)
            and stats["kept"] + stats["dropped_out_of_tolerance"] + stats["unreadable"] == stats["rows"])
    answers = _answers(kept)
    assert not answers.failed.any()
    assert np.all(np.abs(answers.pred - np.array([x.mos for x in kept])) <= 1.0)


@pytest.mark.slow
def test_vlm_teacher_distills_videos_shown_as_pictures_in_the_presets_answer_format(synth, tmp_path):
    """PreResQ-R1's multi-frame view sends a video as pictures (media type `images`): distill used to look
    its expert question up by that media type and stop with a KeyError."""
    from rewards import PRESETS
    from rollout.demo.tiny_model import ensure_tiny_model
    from rollout.prompts import PRERESQ_VQA_QUESTION, expert_question

    asked = expert_question(PRESETS["preresq-vqa"].question("video"), "video")
    assert asked.startswith("You are an expert in video quality") and asked.endswith(PRERESQ_VQA_QUESTION)
    model = ensure_tiny_model(tmp_path / "tiny", seed=0)
    out = tmp_path / "sft.parquet"
    r = _qthink("distill", "--teacher", str(model), "--data", str(synth.train_manifest), "--out", str(out),
                "--samples", "1", "rollout.max_tokens=8", "reward.preset=preresq-vqa", "data.video_view=multiframe")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["kept"] + stats["dropped_out_of_tolerance"] + stats["unreadable"] == stats["rows"]
    assert any(row.media_type == "video" for row in ManifestFile(synth.train_manifest).rows)
