"""Running the Serve app as a product team does, over real HTTP on the tiny model: a new model dir rolled out
under traffic, a replica killed (-9) under a 32-request load, and the metrics a dashboard reads. Each test
prints the numbers docs/design.md ("Serving") records."""

import asyncio
import base64
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from cluster.config import QThinkConfig, RolloutConfig, ServeConfig
from cluster.ray_cluster import free_port

pytestmark = pytest.mark.slow

ENGINE = ["rollout.max_tokens=8", "rollout.max_model_len=1024"]


def _score_body() -> dict:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(buffer, "PNG")
    return {"image": base64.b64encode(buffer.getvalue()).decode(), "samples": 1}


def _model_copy(tiny_model_dir, folder) -> str:
    """A copy of the tiny model under another name: the name is what a response's `model` says."""
    shutil.copytree(tiny_model_dir, folder)
    return str(folder)


def _replicas_running(count: int) -> bool:
    from ray import serve

    app = serve.status().applications.get("qthink")
    if app is None:
        return False
    states = app.deployments["QualityJudge"].replica_states
    return states.get("RUNNING", 0) == count and sum(states.values()) == count


def test_a_new_model_dir_rolls_out_while_every_request_is_answered(ray_local, tiny_model_dir, tmp_path):
    from ray import serve

    from cluster.serve import APP_NAME, app_builder, start

    old, new = _model_copy(tiny_model_dir, tmp_path / "judge-v1"), _model_copy(tiny_model_dir, tmp_path / "judge-v2")
    cfg = QThinkConfig(rollout=RolloutConfig(max_tokens=8, max_model_len=1024),
                       serve=ServeConfig(min_replicas=1, max_replicas=1, port=free_port()))
    url, body, answers, stop = start(old, cfg), _score_body(), [], threading.Event()

    def client():
        with httpx.Client(base_url=url, timeout=120) as http:
            while not stop.is_set():
                try:
                    response = http.post("/v1/score", json=body)
                    answers.append((response.status_code, response.json().get("model")))
                except httpx.HTTPError as error:
                    answers.append((type(error).__name__, None))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(5)
        started, before = time.perf_counter(), len(answers)
        # what `serve deploy` does with a config whose args name the new model dir
        serve.run(app_builder({"model": new, "overrides": ENGINE}), name=APP_NAME, route_prefix="/", blocking=False)
        deadline = time.perf_counter() + 600
        while not (len(answers) > before + 5 and all(m == "judge-v2" for _, m in answers[-5:])):
            assert time.perf_counter() < deadline, answers[-10:]
            time.sleep(0.5)
        rolled_s = time.perf_counter() - started
    finally:
        stop.set()
        for thread in clients:
            thread.join()
        serve.shutdown()
    failed = [a for a in answers if a[0] != 200]
    served_by = {m: sum(1 for _, n in answers if n == m) for m in ("judge-v1", "judge-v2")}
    print(f"rolling update: {len(answers)} requests, {len(failed)} failed, answered by {served_by}, "
          f"new model answering alone {rolled_s:.1f} s after the deploy call")
    assert not failed and served_by["judge-v1"] > 0 and served_by["judge-v2"] >= 5


def _replica_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ServeReplica:qthink:QualityJudge"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_a_replica_killed_under_32_concurrent_requests(ray_local, tiny_model_dir):
    """Reports: requests failed (and whether they were in flight at the kill), 5xx after it, and how long
    until both replicas run again."""
    from ray import serve

    from cluster.serve import start

    cfg = QThinkConfig(rollout=RolloutConfig(max_tokens=8, max_model_len=1024),
                       serve=ServeConfig(min_replicas=2, max_replicas=2, port=free_port()))
    url, body = start(str(tiny_model_dir), cfg), _score_body()
    deadline = time.perf_counter() + 300
    while not _replicas_running(2):
        assert time.perf_counter() < deadline, "two replicas never ran"
        time.sleep(1)
    log, state = [], {"killed_at": None, "recovered_at": None}

    async def user(http):
        while state["recovered_at"] is None or time.perf_counter() < state["recovered_at"] + 10:
            began = time.perf_counter()
            try:
                status = (await http.post("/v1/score", json=body)).status_code
            except httpx.HTTPError as error:
                status = type(error).__name__
            log.append((began, time.perf_counter(), status))

    async def operator():
        await asyncio.sleep(15)
        before = _replica_pids()
        state["killed_at"] = time.perf_counter()
        os.kill(before[0], signal.SIGKILL)
        # back: a replacement process exists and the controller counts two running replicas again
        while not (set(_replica_pids()) - set(before) and _replicas_running(2)):
            assert time.perf_counter() < state["killed_at"] + 300, "the killed replica was not replaced"
            await asyncio.sleep(0.5)
        state["recovered_at"] = time.perf_counter()

    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=32)) as http:
            await asyncio.gather(operator(), *(user(http) for _ in range(32)))

    try:
        asyncio.run(main())
    finally:
        serve.shutdown()
    killed = state["killed_at"]
    failed = [(b, e, s) for b, e, s in log if s != 200]
    in_flight = [f for f in failed if f[0] < killed < f[1]]
    later_5xx = [f for f in failed if f[0] >= killed]
    print(f"replica kill: {len(log)} requests, {len(failed)} failed ({len(in_flight)} of them in flight at the "
          f"kill, statuses {sorted({str(s) for _, _, s in failed})}), {len(later_5xx)} failures among requests "
          f"sent after it, both replicas running again {state['recovered_at'] - killed:.1f} s after the kill")
    assert len(in_flight) == len(failed) and not later_5xx
    assert sum(1 for b, _, s in log if b > state["recovered_at"] and s == 200) > 0


def test_metrics_a_dashboard_reads_are_exported_after_traffic(tiny_model_dir, tmp_path):
    """`qthink serve` as a user starts it, with Ray's Prometheus export on."""
    port, metrics_port = free_port(), free_port()
    with open(tmp_path / "serve.log", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cluster.cli", "serve", "--model", str(tiny_model_dir),
                                 f"serve.port={port}", f"cluster.metrics_export_port={metrics_port}",
                                 "cluster.num_cpus=2", *ENGINE], start_new_session=True, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.perf_counter() + 300
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                assert time.perf_counter() < deadline, "the server never answered /healthz"
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            for _ in range(3):
                assert http.post("/v1/score", json=_score_body()).status_code == 200
            assert http.post("/v1/score", json={"image": "@@"}).status_code == 400
        names = ("ray_qthink_generated_tokens", "ray_qthink_scored_items", "ray_serve_num_http_requests",
                 "ray_serve_http_request_latency_ms_bucket")
        def rejected(text: str) -> bool:  # the 400 is counted too
            return any('status_code="400"' in line for line in text.splitlines()
                       if line.startswith("ray_serve_num_http_requests"))

        deadline = time.perf_counter() + 120
        while True:  # each process exports on its own clock: wait until every series has arrived
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            missing = [name for name in names if name not in text] + ([] if rejected(text) else ["the 400"])
            if not missing:
                break
            assert time.perf_counter() < deadline, f"not exported: {missing}"
            time.sleep(2)
        scored = [line for line in text.splitlines() if line.startswith("ray_qthink_scored_items")]
        assert any('media_type="image"' in line and line.rstrip().endswith(" 3.0") for line in scored), scored
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
