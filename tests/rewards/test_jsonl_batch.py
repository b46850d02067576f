"""`qthink reward` file format: the whole file is one batch, output = input + rewards + total."""

import json

import pytest

from rewards import PRESETS, score_batch, score_jsonl


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_scores_file_as_one_batch(tmp_path):
    rows = [
        {
            "prompt_id": "v1",
            "mos": 4.2,
            "response": "<think>good</think><answer>4.1</answer>",
            "variant": "original",
        },
        {
            "prompt_id": "v1",
            "mos": 4.2,
            "response": "<think>good</think><answer>3.95</answer>",
            "variant": "original",
        },
        {
            "prompt_id": "v2",
            "mos": 1.9,
            "response": "<think>poor</think><answer>2.1</answer>",
            "variant": "original",
        },
        {"prompt_id": "v2", "mos": 1.9, "response": "garbage", "variant": "original"},
        {
            "prompt_id": "v1",
            "mos": 4.2,
            "response": "<think>x</think><answer>2.5</answer>",
            "variant": "perturbed",
        },
        {
            "prompt_id": "v1",
            "mos": 4.2,
            "response": "<think>x</think><answer>2.4</answer>",
            "variant": "perturbed",
        },
        {
            "prompt_id": "v2",
            "mos": 1.9,
            "response": "<think>x</think><answer>3.3</answer>",
            "variant": "perturbed",
        },
        {
            "prompt_id": "v2",
            "mos": 1.9,
            "response": "<think>x</think><answer>3.1</answer>",
            "variant": "perturbed",
        },
    ]
    write_rows(tmp_path / "in.jsonl", rows)
    summary = score_jsonl(PRESETS["qthink"], tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    expected = score_batch(
        PRESETS["qthink"],
        [r["response"] for r in rows],
        [r["mos"] for r in rows],
        [r["prompt_id"] for r in rows],
        [r["variant"] for r in rows],
    )
    assert len(out) == 8
    for k, (row, scored) in enumerate(zip(rows, out, strict=True)):
        assert {key: scored[key] for key in row} == row
        assert list(scored["rewards"]) == ["format", "regression", "rank", "consistency", "temporal"]
        assert scored["total"] == pytest.approx(expected.total[k])
        assert scored["rewards"]["rank"] == pytest.approx(expected.components["rank"][k])
    assert [o["rewards"]["temporal"] for o in out[4:]] == [0.0] * 4
    assert summary["rows"] == 8 and summary["prompts"] == 2 and summary["group_size"] == 2
    assert summary["parse_failures"] == 1
    assert set(summary["means"]) == set(out[0]["rewards"])


def test_a_prompt_in_two_adjacent_groups_stays_two_groups_with_the_group_size(tmp_path):
    """An epoch boundary can put one prompt twice in a row: without G the file reads as one group of 4."""
    rows = [{"prompt_id": "a", "mos": 4.0, "response": f"<think>x</think><answer>{s}</answer>"}
            for s in ("3.9", "1.5", "4.1", "2.0")] + [
           {"prompt_id": "b", "mos": 2.0, "response": f"<think>x</think><answer>{s}</answer>"} for s in ("2.1", "4.4")]
    write_rows(tmp_path / "in.jsonl", rows)
    with pytest.raises(ValueError, match="same number of consecutive responses"):
        score_jsonl(PRESETS["qthink"], tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    summary = score_jsonl(PRESETS["qthink"], tmp_path / "in.jsonl", tmp_path / "out.jsonl", group_size=2)
    assert summary["group_size"] == 2 and summary["rows"] == 6
