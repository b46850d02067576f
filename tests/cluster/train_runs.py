"""`qthink train` in a subprocess for the pipeline and fault tests: its overrides, what it wrote, corrupt
media, and its Ray actors found from outside by their process titles (`ray::Learner.train_step`), as an
operator would find them with `ps`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def train_args(out, shared, grpo_steps=3, save_every=2):
    # 16 images + 16 videos: every step is likely to hold a video (and its perturbed copy)
    return [f"train.output_dir={out}", f"demo.tiny_dir={shared['tiny']}",
            f"demo.synthetic_dir={shared['synth']}", "demo.images=16", "demo.videos=16",
            "train.sft_steps=2", "train.sft_batch_size=4", f"train.grpo_steps={grpo_steps}",
            "train.prompts_per_step=4", "rollout.n=2", "rollout.max_tokens=16", "train.eval_limit=6",
            "train.eval_every=0", f"train.save_every={save_every}", "learner.lr=1e-4", "logging.progress_bar=false",
            "learner.lr_schedule=linear",  # so that a resume has to pick the schedule up where it was
            # the demo's minutes-long extras (vision pre-training, 25,600 more SFT images) are off here
            "demo.vision_pretrain_steps=0", "demo.sft_images=0"]


def records(out, name):
    path = Path(out) / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def qthink(*args, **kw):
    """The CLI in its own session: every Ray process it starts shares that session id (= its pid)."""
    return subprocess.Popen([sys.executable, "-m", "cluster.cli", *args], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def corrupt_tenth(manifest) -> list:
    """Truncate every 10th row's media file to 20 bytes ("truncated" or "empty" media); returns those rows."""
    from rollout.manifest import ManifestFile

    broken = ManifestFile(manifest).rows[::10]
    for row in broken:
        path = Path(manifest).parent / row.uri
        path.write_bytes(path.read_bytes()[:20])
    return broken


def session_processes(session: int) -> dict[int, str]:
    """pid -> process title (`ray::Learner.train_step`, `VLLM::EngineCore`, ...) of one run's processes:
    those in its session."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            state, _, _, sid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):  # it ended while we looked
            continue
        if int(sid) == session and state != "Z":  # a zombie has ended; only its exit status is left
            found[int(pid)] = name
    return found


def actor_pids(session: int, title: str) -> list[int]:
    """A run's processes titled `title`: `ray::RewardWorker` matches the actor whatever it runs
    (`ray::RewardWorker.score_responses`), `ray::RolloutWorker.generate` only while it generates."""
    return [pid for pid, name in session_processes(session).items()
            if name == title or ("." not in title and name.startswith(title + "."))]


def left_behind(session: int, timeout=60) -> dict[int, str]:
    """A run's processes still there `timeout` s after its driver ended (Ray stops its workers itself)."""
    deadline = time.time() + timeout
    while (alive := session_processes(session)) and time.time() < deadline:
        time.sleep(1)
    return alive


def wait_for_step(proc, out, step, timeout=600, poll=0.2) -> None:
    """Until grpo step `step` is in batches.jsonl (the run must still be alive then)."""
    deadline = time.time() + timeout
    while not any(b["stage"] == "grpo" and b["step"] >= step for b in records(out, "batches.jsonl")):
        assert proc.poll() is None, f"the run ended before grpo step {step}"
        assert time.time() < deadline, f"grpo step {step} not reached in {timeout}s"
        time.sleep(poll)


def signal_all(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # the one the test killed
            pass


def wait_until_idle(proc, actors, quiet_s=1.0, timeout=300) -> None:
    """Until no process of `proc`'s run has run a method of `actors` (`ray::RolloutWorker`, ...) for
    `quiet_s`: with its learner ranks stopped (SIGSTOP), the driver then waits in their next call."""
    quiet_since = time.time()
    deadline = quiet_since + timeout
    while time.time() - quiet_since < quiet_s:
        if any(name.startswith(f"{a}.") for name in session_processes(proc.pid).values() for a in actors):
            quiet_since = time.time()
        assert proc.poll() is None, f"the run ended while waiting for {actors} to be idle"
        assert time.time() < deadline, f"{actors} still busy after {timeout}s"
        time.sleep(0.01)


def wait_for_actor(proc, title, timeout=300) -> list[int]:
    """The pids of `proc`'s run titled `title`, as soon as there is one."""
    deadline = time.time() + timeout
    while not (pids := actor_pids(proc.pid, title)):
        assert proc.poll() is None, f"the run ended before any {title} was seen"
        assert time.time() < deadline, f"no {title} in {timeout}s"
        time.sleep(0.01)
    return pids


def kill_actor(proc, title, timeout=300) -> int:
    """SIGKILL the first process of `proc`'s run titled `title`; returns its pid."""
    pid = wait_for_actor(proc, title, timeout)[0]
    os.kill(pid, signal.SIGKILL)
    return pid
