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


def test_several_held_out_sets_get_a_column_each_with_the_pristine_ordering_and_the_gain_interval():
    def row(a, b, pristine):
        return {"srcc": 0.0, "plcc_logistic": 0.1, "parse_failure_rate": 0.0, "pristine_above_worst": pristine,
                "datasets": {"synthetic": a, "heldout-generator": b}}
    gain = {"over": "untrained", "srcc": {"heldout-generator": {"gain": 0.25, "low": 0.2, "high": 0.31},
                                          "synthetic": {"gain": 0.4, "low": 0.35, "high": 0.45}}}
    table = summary_table({"untrained": row(0.01, -0.02, 0.5), "after-sft": {**row(0.41, 0.23, 0.86), "gain": gain}})
    header, untrained, sft, interval = table.splitlines()
    assert "SRCC heldout-generator" in header and "SRCC synthetic" in header and "pristine>lvl5" in header
    assert untrained.split()[1:4] == ["-0.020", "0.010", "0.100"] and "50%" in untrained
    assert sft.split()[1:3] == ["0.230", "0.410"] and "86%" in sft
    assert interval.startswith("after-sft - untrained") and "heldout-generator +0.250 [+0.200, +0.310]" in interval
