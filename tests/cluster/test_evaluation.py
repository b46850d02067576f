"""Held-out evaluation's sampling settings and scoring, with a pool that answers fixed texts (the rollout
engine is not what these tests are about; tests/actors and test_pipeline run it for real). The media are
decoded by Ray tasks (a local Ray), as in a run."""

import numpy as np
from PIL import Image

from cluster.config import load_config
from cluster.evaluation import evaluate, format_table
from rewards import PRESETS
from rollout.manifest import ManifestRow, write_manifest
from rollout.records import RolloutSample

ANSWERS = ["<think>ok</think><answer>4.00</answer>", "<think>ok</think><answer>9</answer>", "no answer"]


class AnsweringPool:
    """Answers every request with ANSWERS (cycled to n) and records each call's sampling overrides."""

    def __init__(self):
        self.calls = []

    def generate(self, requests, n=None, **overrides):
        self.calls.append((n, overrides))
        return [[RolloutSample(r.prompt_id, [0], [1], [-1.0], ANSWERS[j % len(ANSWERS)], variant=r.variant, index=j)
                 for j in range(n)] for r in requests]


def _manifest(tmp_path):
    rows = []
    for i, mos in enumerate([2.0, 4.5]):
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(tmp_path / f"im{i}.png")
        rows.append(ManifestRow(f"im{i}", "image", mos, (1, 5), "toy", "test", uri=f"im{i}.png"))
    write_manifest(rows, tmp_path / "test.parquet")
    return str(tmp_path / "test.parquet")


def test_sampled_eval_uses_eval_temperature_else_the_rollouts_and_greedy_uses_zero(tmp_path, ray_local):
    manifest = _manifest(tmp_path)
    for overrides, samples, expected in [([], 3, 1.0), (["rollout.temperature=0.9"], 3, 0.9),
                                         (["train.eval_temperature=0.7"], 3, 0.7),
                                         (["train.eval_temperature=0.7"], 1, 0.0)]:
        pool = AnsweringPool()
        evaluate(pool, [manifest], PRESETS["qthink"], load_config(None, overrides), samples)
        assert pool.calls == [(samples, {"temperature": expected})], overrides


def test_scores_are_clipped_to_the_scale_before_the_mean_and_a_failure_counts(tmp_path, ray_local):
    report = evaluate(AnsweringPool(), [_manifest(tmp_path)], PRESETS["qthink"], load_config(None, []), samples=3)
    # answers 4.00, 9 (clipped to 5.0), and one that does not parse
    assert [i["pred"] for i in report["items"]] == [4.5, 4.5]
    assert [i["failed"] for i in report["items"]] == [1, 1]
    assert report["parse_failure_rate"] == 2 / 6
    greedy = evaluate(AnsweringPool(), [_manifest(tmp_path)], PRESETS["qthink"], load_config(None, []), samples=1)
    assert [i["pred"] for i in greedy["items"]] == [4.0, 4.0]


class ScoringPool:
    """Answers each request with the score `scores` gives its item id."""

    def __init__(self, scores):
        self.scores = scores

    def generate(self, requests, n=None, **overrides):
        return [[RolloutSample(r.prompt_id, [0], [1], [-1.0],
                               f"<think>ok</think><answer>{self.scores[r.prompt_id]:.2f}</answer>", index=j)
                 for j in range(n)] for r in requests]


def test_the_report_breaks_srcc_down_by_distortion_and_counts_pristine_above_level_5(tmp_path, ray_local):
    rows, scores = [], {}
    for k, (distortion, severity, mos, score) in enumerate([
            ("pristine", 0, 4.8, 3.0), ("blur", 1, 4.4, 4.0), ("blur", 5, 1.3, 2.0), ("blur", 3, 2.8, 3.5),
            ("noise", 1, 4.2, 2.5), ("noise", 5, 1.2, 4.5), ("noise", 3, 2.7, 3.2)]):
        Image.fromarray(np.full((32, 32, 3), 30 * k, np.uint8)).save(tmp_path / f"im{k}.png")
        rows.append(ManifestRow(f"im{k}", "image", mos, (1, 5), "toy", "test", uri=f"im{k}.png",
                                distortion=distortion, severity=severity, source="a"))
        scores[f"im{k}"] = score
    write_manifest(rows, tmp_path / "typed.parquet")
    report = evaluate(ScoringPool(scores), [str(tmp_path / "typed.parquet")], PRESETS["qthink"],
                      load_config(None, []), samples=1)
    by_type = report["metrics"]["distortions"]
    assert by_type["toy/blur"]["srcc"] == 1.0 and by_type["toy/noise"]["srcc"] == -1.0  # noise read as detail
    # pristine 3.0 beats blur level 5 (2.0), loses to noise level 5 (4.5)
    assert report["pristine_above_worst"] == {"fraction": 0.5, "pairs": 2}
    assert "toy/noise" in format_table(report) and "pristine above level 5" in format_table(report)
