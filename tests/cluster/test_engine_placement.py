"""Tensor-parallel engines on GPU nodes, placed as `qthink train` places them, on a Ray cluster of this machine
whose nodes declare 4 GPUs each (Ray only counts them). The engine cannot start here (no GPU, and vLLM's CPU
build has no Ray executor), so a stand-in takes its worker's place and does what vLLM's Ray executor does at
start (tests/cluster/engine_placement_probe.py); what is under test is the placement."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ray_nodes import RayNodes

pytestmark = pytest.mark.slow

PROBE = Path(__file__).with_name("engine_placement_probe.py")


def test_each_engines_ranks_share_its_node_engines_spread_and_an_engine_too_big_for_a_node_is_refused():
    nodes = RayNodes()
    try:
        nodes.start_head(num_cpus=0)
        nodes.add_node("gpu_a", num_cpus=2, resources={"gpu_a": 1}, num_gpus=4)
        nodes.add_node("gpu_b", num_cpus=2, resources={"gpu_b": 1}, num_gpus=4)
        ids = nodes.node_ids()

        def probe(tp: int, engines: int) -> dict:
            done = subprocess.run([sys.executable, str(PROBE), f"127.0.0.1:{nodes.gcs}", str(tp), str(engines)],
                                  capture_output=True, text=True, timeout=300, env=nodes.env)
            assert done.returncode == 0, done.stderr[-4000:]
            return json.loads(done.stdout.strip().splitlines()[-1])

        placed = probe(tp=2, engines=2)  # 2 engines x 2 GPUs would fit one node; they are spread
        engines = placed["engines"]
        assert {e["node"] for e in engines} == {ids["gpu_a"], ids["gpu_b"]}, engines
        for e in engines:
            assert e["bundles"] == [{"CPU": 1, "GPU": 1}, {"GPU": 1}]  # one GPU per rank: what vLLM accepts
            assert e["ranks"] == [e["node"], e["node"]]  # the engine's ranks run on its node, in its bundles
            assert e["gpu_ids"] == []  # the worker holds no GPU: both are its ranks'
        assert placed["free_gpus"] == 4

        refused = probe(tp=8, engines=1)  # no node has 8 GPUs
        assert "cannot hold" in refused["refused"] and "GPU': 8" in refused["refused"], refused
    finally:
        nodes.stop()
