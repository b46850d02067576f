"""Checkpoints: `step_<N>/` folders under a local path or any pyarrow filesystem URI, the last K kept.

Each holds the learner ranks' DeepSpeed state (model, optimizer, scheduler, per-rank RNG), the driver
state (stage, step, policy version, data cursor, driver RNG) and the resolved config. A folder is
complete only when its `driver_state.json` exists: it is written last, so a run killed mid-save resumes
from the previous complete checkpoint. Remote URIs (s3://, gs://, hdfs://…) are written through a local
staging folder and uploaded with pyarrow, as Ray Train's storage_path does.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

STATE_FILE = "driver_state.json"


def _split(uri: str) -> tuple[pafs.FileSystem, str, bool]:
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path, not isinstance(fs, pafs.LocalFileSystem)
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()), False


class CheckpointStore:
    def __init__(self, root: str, keep_last: int = 2):
        self.root, self.keep_last = root, keep_last
        self.fs, self.path, self.remote = _split(root)
        self.fs.create_dir(self.path, recursive=True)

    def _complete_steps(self) -> list[int]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        steps = []
        for info in infos:
            name = Path(info.path).name
            if info.type == pafs.FileType.Directory and name.startswith("step_"):
                marker = self.fs.get_file_info(f"{info.path}/{STATE_FILE}")
                if marker.type == pafs.FileType.File:
                    steps.append(int(name[len("step_"):]))
        return sorted(steps)

    def latest(self) -> int | None:
        steps = self._complete_steps()
        return steps[-1] if steps else None

    def save(self, step: int, driver_state: dict, config_yaml: str, save_learner) -> str:
        """`save_learner(local_dir)` writes the learner ranks' state into a local folder."""
        name = f"step_{step:07d}"
        staging = Path(tempfile.mkdtemp(prefix="qthink-ckpt-")) if self.remote else Path(self.path) / name
        staging.mkdir(parents=True, exist_ok=True)
        save_learner(str(staging / "learner"))
        (staging / "config.resolved.yaml").write_text(config_yaml)
        state_bytes = json.dumps(driver_state).encode()
        if self.remote:
            pafs.copy_files(str(staging), f"{self.path}/{name}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
            with self.fs.open_output_stream(f"{self.path}/{name}/{STATE_FILE}") as f:
                f.write(state_bytes)
            shutil.rmtree(staging, ignore_errors=True)
        else:
            (staging / STATE_FILE).write_bytes(state_bytes)
        for old in self._complete_steps()[: -self.keep_last]:
            self.fs.delete_dir(f"{self.path}/step_{old:07d}")
        return f"{self.root.rstrip('/')}/{name}"

    def load(self, step: int, load_learner) -> dict:
        """Restores the learner (`load_learner(local_dir)`) and returns the driver state."""
        name = f"step_{step:07d}"
        if self.remote:
            local = Path(tempfile.mkdtemp(prefix="qthink-ckpt-"))
            pafs.copy_files(f"{self.path}/{name}", str(local), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
        else:
            local = Path(self.path) / name
        load_learner(str(local / "learner"))
        state = json.loads((local / STATE_FILE).read_text())
        if self.remote:
            shutil.rmtree(local, ignore_errors=True)
        return state
