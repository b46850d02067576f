"""Ray nodes started with `ray start`, as an operator starts them, on this machine: a head (with the job
server) and worker nodes with declared resources, each in a process group of its own so that a node can be
removed with SIGKILL and the whole cluster stopped without `ray stop` (which would also stop other Ray
instances of this machine, the test session's own included)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cluster.ray_cluster import free_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
EXCLUDES = '{"excludes": [".venv", ".git", "runs", "benchmarks/results"]}'


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class RayNodes:
    def __init__(self):
        self.env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
        self.env.pop("RAY_ADDRESS", None)
        self.tmp = tempfile.mkdtemp(prefix="qrn", dir="/tmp")  # Ray's unix sockets live here: keep it short
        self.nodes: dict[str, subprocess.Popen] = {}
        self.gcs, self.dash = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dash}"

    def _ports(self) -> list[str]:
        # every node of this machine needs its own agent ports (the session's own Ray holds the defaults)
        return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]

    def start_head(self, num_cpus: int = 0) -> None:
        self._start("head", ["--head", f"--port={self.gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={self.dash}", f"--num-cpus={num_cpus}", f"--temp-dir={self.tmp}"])
        deadline = time.time() + 120
        while self.ray("job", "list", "--address", self.address).returncode != 0:  # the job server comes up
            assert time.time() < deadline, "the head's job server did not come up"
            time.sleep(2)

    def add_node(self, name: str, num_cpus: int, resources: dict, num_gpus: int = 0) -> None:
        """`num_gpus`: GPUs the node declares (Ray counts them; none need exist)."""
        # A folder of its own, as on a machine of its own: nodes sharing one would share the unpacked working
        # dir of a job, and a node that unpacks it for a new worker first deletes it, under the running driver
        # (whose next getcwd fails: "oneMKL FATAL ERROR: Cannot load libtorch_cpu.so" at `import torch`).
        temp_dir = tempfile.mkdtemp(prefix="n", dir=self.tmp)
        self._start(name, [f"--address=127.0.0.1:{self.gcs}", f"--num-cpus={num_cpus}",
                           f"--resources={json.dumps(resources)}", f"--node-manager-port={free_port()}",
                           f"--object-manager-port={free_port()}", f"--temp-dir={temp_dir}", f"--num-gpus={num_gpus}"])
        deadline = time.time() + 120
        while name not in self.node_ids():
            assert time.time() < deadline, f"node {name} did not join"
            time.sleep(1)

    def _start(self, name: str, args: list[str]) -> None:
        self.nodes[name] = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", *self._ports(), *args],
            env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def node_ids(self) -> dict[str, str]:
        """node name -> Ray node id of the live nodes (a worker node is named by its first custom resource)."""
        from ray.util.state import list_nodes

        out = {}
        for node in list_nodes(address=self.address, filters=[("state", "=", "ALIVE")], detail=True, limit=100,
                               raise_on_missing_output=False):
            custom = [k for k in node.resources_total if k not in ("CPU", "GPU", "memory", "object_store_memory")
                      and not k.startswith(("node:", "accelerator_type"))]
            out["head" if node.is_head_node else (custom[0] if custom else node.node_id)] = node.node_id
        return out

    def remove_node(self, name: str) -> None:
        """As if the machine died: SIGKILL to the node's processes: what `ray start` started, and every Ray
        worker of its raylet with what it started. Workers lead process groups of their own, and a job's
        workers (runtime env) are not the raylet's children, so they are found by RAY_RAYLET_PID."""
        root = self.nodes.pop(name).pid
        doomed = {root, *_descendants(root)}
        raylets = {str(pid) for pid in doomed if b"raylet/raylet" in _read(f"/proc/{pid}/cmdline")}
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            env = _read(f"/proc/{pid}/environ").split(b"\0")
            if any(f"RAY_RAYLET_PID={r}".encode() in env for r in raylets):
                doomed |= {pid, *_descendants(pid)}
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def ray(self, *args, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ray"), *args], env=self.env, capture_output=True, text=True, cwd=REPO,
                              timeout=timeout)

    def submit(self, *qthink_args: str, submission_id: str | None = None, wait: bool = True,
               timeout: float = 900) -> subprocess.CompletedProcess:
        """`ray job submit` of `qthink ...` with this checkout as the working dir; retried while the job agent
        is still coming up ("No available agent")."""
        ids = ["--submission-id", submission_id] if submission_id else []
        deadline = time.time() + 180
        while True:
            done = self.ray("job", "submit", "--address", self.address, "--working-dir", str(REPO),
                            "--runtime-env-json", EXCLUDES, *ids, *([] if wait else ["--no-wait"]),
                            "--", "qthink", *qthink_args, timeout=timeout)
            if "No available agent" not in done.stdout + done.stderr or time.time() > deadline:
                return done
            time.sleep(3)

    def job_status(self, submission_id: str) -> str:
        from ray.job_submission import JobSubmissionClient

        return str(JobSubmissionClient(self.address).get_job_status(submission_id).value)

    def job_logs(self, submission_id: str) -> str:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address).get_job_logs(submission_id)

    def stop(self) -> None:
        for proc in self.nodes.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.nodes.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)
