import subprocess
import sys

from rollout.manifest import ManifestRow, write_manifest


def _qthink(*args):
    return subprocess.run([sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True)


def test_synth_then_strict_check_reports_zero_unreadable(tmp_path):
    r = _qthink("data", "synth", "--out", str(tmp_path / "s"), "--images", "60", "--videos", "6")
    assert r.returncode == 0, r.stderr
    r = _qthink("data", "check", "--strict", str(tmp_path / "s" / "train.parquet"),
                str(tmp_path / "s" / "test.parquet"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("unreadable: 0") == 2


def test_strict_check_fails_and_names_the_bad_row(tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    write_manifest([ManifestRow(id="bad-1", media_type="image", uri="fake.png", mos_raw=3.0, mos_scale=(1.0, 5.0),
                                dataset="t", split="test")], tmp_path / "m.parquet")
    relaxed = _qthink("data", "check", str(tmp_path / "m.parquet"))
    strict = _qthink("data", "check", "--strict", str(tmp_path / "m.parquet"))
    assert relaxed.returncode == 0 and strict.returncode == 1
    assert "bad-1" in strict.stdout and "not_image" in strict.stdout
