"""Learning-rate schedules: every stage (SFT, GRPO) warms up and decays over its own steps."""

import pytest
import torch

from learners.deepspeed_setup import lr_factor, start_schedule


def _rates(scheduler, steps: int) -> list[float]:
    """The rate each update uses, with the scheduler stepped after each update as DeepSpeed does."""
    rates = []
    for _ in range(steps):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def test_warmup_then_a_decay_that_ends_inside_the_stage():
    cosine = lr_factor(2, "cosine", 5)
    assert [cosine(k) for k in range(5)] == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.25])
    linear = lr_factor(0, "linear", 4)
    assert [linear(k) for k in range(4)] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert lr_factor(3, "constant", 10)(9) == 1.0
    with pytest.raises(ValueError, match="'cosin'"):
        lr_factor(0, "cosin", 10)


def _scheduler():
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.ones(2)
    return torch.optim.lr_scheduler.LambdaLR(torch.optim.AdamW([param], lr=1.0), lambda step: 1.0)


def test_each_stage_restarts_the_schedule_and_a_resume_goes_on_from_the_checkpoints_count():
    scheduler = _scheduler()
    start_schedule(scheduler, 1e-5, lr_factor(0, "constant", 3), restart=True)  # GRPO alone
    assert _rates(scheduler, 3) == pytest.approx([1e-5] * 3)
    start_schedule(scheduler, 1e-3, lr_factor(2, "cosine", 5), restart=True)  # SFT
    assert _rates(scheduler, 3) == pytest.approx([5e-4, 1e-3, 1e-3])
    saved = scheduler.state_dict()  # what a checkpoint after 3 SFT updates holds
    assert _rates(scheduler, 2) == pytest.approx([7.5e-4, 2.5e-4])
    start_schedule(scheduler, 1e-5, lr_factor(0, "linear", 2), restart=True)  # GRPO: not the tail of SFT's cosine
    assert _rates(scheduler, 2) == pytest.approx([1e-5, 5e-6])

    resumed = _scheduler()  # a new process: fresh optimizer, the checkpoint's scheduler state, then its stage
    resumed.load_state_dict(saved)
    start_schedule(resumed, 1e-3, lr_factor(2, "cosine", 5), restart=False)
    assert _rates(resumed, 2) == pytest.approx([7.5e-4, 2.5e-4])


ACCUMULATE = """
import os, socket, sys
os.environ.update(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
with socket.socket() as s:
    s.bind(("", 0))
    os.environ["MASTER_PORT"] = str(s.getsockname()[1])
import deepspeed, torch
from learners.config import LearnerConfig
from learners.deepspeed_setup import deepspeed_config
deepspeed.init_distributed(dist_backend="gloo")
config = deepspeed_config(LearnerConfig(dtype="bf16", zero_stage=int(sys.argv[1]), micro_batch_size=1))
model = torch.nn.Linear(4, 1, bias=False).to(torch.bfloat16)
torch.nn.init.ones_(model.weight)
engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0), config=config)
for i, scale in enumerate([1.0] + [1e-3] * 8):  # one large micro-batch gradient, then 8 small ones
    engine.set_gradient_accumulation_boundary(i == 8)
    engine.backward(engine(torch.ones(1, 4, dtype=torch.bfloat16)).sum() * scale, scale_wrt_gas=False)
    engine.step()
print(float(engine.get_global_grad_norm()) / 2)  # 4 weights: per-weight gradient sum
"""


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [1, 2, 3])
def test_bf16_accumulates_micro_batch_gradients_in_fp32(zero_stage):
    import subprocess
    import sys

    # in bf16, 1 + 1e-3 rounds back to 1 (its step there is 2^-7): the 8 small gradients would be lost
    r = subprocess.run([sys.executable, "-c", ACCUMULATE, str(zero_stage)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.strip().splitlines()[-1]) == pytest.approx(1.008, abs=5e-4)
