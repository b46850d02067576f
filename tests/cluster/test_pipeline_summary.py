"""The end-of-run table: measured stages only; a run without held-out data says so instead of printing 0."""

from cluster.pipeline import summary_table


def test_a_run_without_held_out_data_reports_nothing_measured():
    table = summary_table({"untrained": {}, "after-sft": {}, "after-grpo": {}})
    assert "not evaluated" in table
    assert "0.000" not in table


def test_measured_stages_are_listed_in_stage_order():
    row = {"srcc": 0.3341, "plcc_logistic": 0.34, "parse_failure_rate": 0.002}
    table = summary_table({"after-sft": row, "untrained": {**row, "srcc": -0.0142}, "sft-step100": row})
    lines = table.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["untrained", "after-sft"]
    assert "-0.014" in lines[1] and "0.334" in lines[2]
