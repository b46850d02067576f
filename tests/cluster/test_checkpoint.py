import json

from cluster.checkpoint import STATE_FILE, CheckpointStore


def _save_learner(text):
    def save(d):
        import os

        os.makedirs(d, exist_ok=True)
        open(f"{d}/weights.txt", "w").write(text)
    return save


def test_keeps_the_last_k_and_loads_what_was_saved(tmp_path):
    store = CheckpointStore(str(tmp_path / "ck"), keep_last=2)
    for step in (2, 4, 6):
        store.save(step, {"step": step, "cursor": {"epoch": 0, "position": step * 3}}, "cfg: 1\n",
                   _save_learner(f"w{step}"))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_0000004", "step_0000006"]
    assert store.latest() == 6
    seen = {}
    state = store.load(6, lambda d: seen.setdefault("w", open(f"{d}/weights.txt").read()))
    assert state == {"step": 6, "cursor": {"epoch": 0, "position": 18}} and seen["w"] == "w6"


def test_a_checkpoint_without_its_driver_state_is_not_resumed_from(tmp_path):
    store = CheckpointStore(str(tmp_path / "ck"))
    store.save(2, {"step": 2}, "", _save_learner("a"))
    store.save(4, {"step": 4}, "", _save_learner("b"))
    (tmp_path / "ck" / "step_0000004" / STATE_FILE).unlink()  # killed while saving step 4
    assert store.latest() == 2


def test_uri_roots_go_through_pyarrow_filesystems(tmp_path):
    store = CheckpointStore(f"file://{tmp_path}/uri", keep_last=1)
    store.save(1, {"step": 1}, "x", _save_learner("u"))
    assert json.loads((tmp_path / "uri" / "step_0000001" / STATE_FILE).read_text()) == {"step": 1}
    assert CheckpointStore(f"file://{tmp_path}/uri").latest() == 1


def test_a_remote_filesystem_is_written_through_a_staging_folder_and_read_back(tmp_path, monkeypatch):
    """The upload path (s3://, gs://, hdfs://): a pyarrow filesystem that is not the local one. The URI's
    resolution is the only stand-in; the files go through pyarrow's copy and output streams."""
    import pyarrow.fs as pafs

    from cluster import checkpoint

    (tmp_path / "bucket").mkdir()
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    monkeypatch.setattr(checkpoint, "_split", lambda uri: (remote, "run/ck", True))
    store = CheckpointStore("s3://bucket/run/ck", keep_last=1)
    for step in (1, 2):
        store.save(step, {"step": step}, "cfg: 1\n", _save_learner(f"w{step}"))
    ck = tmp_path / "bucket" / "run" / "ck"
    assert sorted(p.name for p in ck.iterdir()) == ["step_0000002"]  # the older one deleted remotely
    assert (ck / "step_0000002" / "config.resolved.yaml").read_text() == "cfg: 1\n"
    assert CheckpointStore("s3://bucket/run/ck").latest() == 2
    seen = {}
    state = store.load(2, lambda d: seen.setdefault("w", open(f"{d}/weights.txt").read()))
    assert state == {"step": 2} and seen["w"] == "w2"
