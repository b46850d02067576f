"""The weight-sync wire in separate processes, on CPU and on CUDA tensors (the GPU machines have no vLLM or
Ray: the script needs torch only); the CUDA case is gpu-marked. The CPU case keeps the script from rotting."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_sender_and_two_receivers_in_their_own_processes_are_bit_exact(tmp_path, device):
    """On CUDA two buffers alternate on the receivers (clones handed to the load); on CPU one per bucket."""
    out = tmp_path / "wire.json"
    args = ["--device", device, "--hidden", "256", "--layers", "4", "--vocab", "1000", "--bucket-mb", "1",
            "--receivers", "2", "--repeats", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "benchmarks.weight_transfer_wire", *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bit-exact: True" in done.stdout
