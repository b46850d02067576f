"""`ray job submit` for real: a local head on loopback, a short training job, SUCCEEDED, metrics in its
logs; the head is stopped by killing the process group this test started (never `ray stop`, which would
also stop other Ray instances of this machine) (slow)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cluster.ray_cluster import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]



def test_ray_job_submit_runs_a_short_training(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash = free_port(), free_port()
    ray_tmp = tempfile.mkdtemp(prefix="qrj", dir="/tmp")  # Ray's unix sockets live here: keep the path short
    head = subprocess.Popen(
        [str(bin_dir / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=4",
         # the session's own Ray (other tests) holds the default agent ports: "No available agent" otherwise
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
         f"--temp-dir={ray_tmp}"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        address = f"http://127.0.0.1:{dash}"
        out = tmp_path / "run"
        job = ["train", f"train.output_dir={out}", f"demo.tiny_dir={tmp_path / 'tiny'}",
               f"demo.synthetic_dir={tmp_path / 'synth'}", "demo.images=16", "demo.videos=4",
               "train.sft_steps=1", "train.sft_batch_size=4", "train.grpo_steps=2", "train.prompts_per_step=2",
               "rollout.n=2", "rollout.max_tokens=8", "train.eval_limit=4", "train.eval_every=0",
               "train.save_every=0", "logging.progress_bar=false",
               "demo.vision_pretrain_steps=0", "demo.sft_images=0"]  # not the demo's extras
        deadline = time.time() + 120
        while True:  # the dashboard (job server) takes a few seconds to come up
            r = subprocess.run([str(bin_dir / "ray"), "job", "list", "--address", address], env=env,
                               capture_output=True, text=True)
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(2)
        deadline = time.time() + 180
        while True:  # the job agent comes up after the dashboard: "No available agent", try again
            submit = subprocess.run(
                [str(bin_dir / "ray"), "job", "submit", "--address", address, "--working-dir", str(REPO),
                 "--runtime-env-json", '{"excludes": [".venv", ".git", "runs", "benchmarks/results"]}',
                 "--", "qthink", *job],
                env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
            logs = submit.stdout + submit.stderr
            if "No available agent" not in logs or time.time() > deadline:
                break
            time.sleep(3)
        assert submit.returncode == 0 and re.search(r"Job '\S+' succeeded", logs), logs[-4000:]
        assert re.search(r"\[grpo step 2\] .*reward=", logs), logs[-4000:]  # step metrics, from the job's logs
        assert re.search(r"after-grpo\s+[-\d.]+", logs), logs[-4000:]  # and the summary table
        assert (out / "metrics.jsonl").exists()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
