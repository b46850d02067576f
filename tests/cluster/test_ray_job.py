"""`ray job submit` for real: a local head on loopback, a short training job, SUCCEEDED, metrics in its
logs; the head is stopped by killing the process group this test started (never `ray stop`, which would
also stop other Ray instances of this machine) (slow)."""

import re

import pytest
from ray_nodes import RayNodes

pytestmark = pytest.mark.slow


def test_ray_job_submit_runs_a_short_training(tmp_path):
    nodes = RayNodes()
    try:
        nodes.start_head(num_cpus=4)
        out = tmp_path / "run"
        submit = nodes.submit(
            "train", f"train.output_dir={out}", f"demo.tiny_dir={tmp_path / 'tiny'}",
            f"demo.synthetic_dir={tmp_path / 'synth'}", "demo.images=16", "demo.videos=4",
            "train.sft_steps=1", "train.sft_batch_size=4", "train.grpo_steps=2", "train.prompts_per_step=2",
            "rollout.n=2", "rollout.max_tokens=8", "train.eval_limit=4", "train.eval_every=0",
            "train.save_every=0", "logging.progress_bar=false",
            "demo.vision_pretrain_steps=0", "demo.sft_images=0")  # not the demo's extras
        logs = submit.stdout + submit.stderr
        assert submit.returncode == 0 and re.search(r"Job '\S+' succeeded", logs), logs[-4000:]
        assert re.search(r"\[grpo step 2\] .*reward=", logs), logs[-4000:]  # step metrics, from the job's logs
        assert re.search(r"after-grpo\s+[-\d.]+", logs), logs[-4000:]  # and the summary table
        assert (out / "metrics.jsonl").exists()
    finally:
        nodes.stop()
