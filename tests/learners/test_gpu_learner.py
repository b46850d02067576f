"""The learner on CUDA, as `Learner.setup` runs it for a rank with gpus_per_rank > 0 (NCCL, DeepSpeed's CUDA
accelerator), on the tiny Qwen2.5-VL. Skipped without a GPU (conftest); run on a lent GPU machine, results
in benchmarks/README.md ("GPU").

What only a GPU can show: the same log-probs as on the CPU, bf16 training steps under ZeRO-2 and ZeRO-3
on NCCL, and that the exported weights (what a rollout worker loads after a sync) compute exactly what
the trained engine computes.
"""

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load

from cluster.ray_cluster import free_port
from learners.config import LearnerConfig
from learners.logprobs import media_tensors, scored_sequence, sequence_logprobs
from learners.policy_trainer import PolicyTrainer, shard_batch
from rollout.engine import banned_token_ids

from learner_batch import grpo_batch

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nccl():
    """One NCCL group of world size 1, as `Learner.setup` makes for each GPU rank. DS_ACCELERATOR is set
    to cuda here: conftest defaults it to cpu for the CPU tests, and DeepSpeed would then train on the CPU."""
    port = free_port()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                      DS_ACCELERATOR="cuda")
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    assert get_accelerator().device_name() == "cuda", "DeepSpeed picked its accelerator before this test set it"
    deepspeed.init_distributed(dist_backend="nccl")
    yield
    torch.distributed.destroy_process_group()


def _batch(model_dir, seed=0, rollout_logprob=None):
    return grpo_batch(model_dir, g=4, seed=seed, token_range=(20, 2000), length_range=(4, 13),
                      rollout_logprob=rollout_logprob)

def _scored(proc, seqs, media, config):
    return [scored_sequence(config, s.prompt_token_ids, s.token_ids, media_tensors(proc, media[s.prompt_id]))
            for s in seqs]


def test_sequence_logprobs_on_cuda_equal_the_cpu_in_fp32_and_stay_within_bf16_error(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForImageTextToText

    # cuDNN runs fp32 convolutions (the patch embedding) in TF32 by default: exact fp32 is the claim here.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    proc, seqs, media = _batch(tiny_model_dir)
    pad = proc.tokenizer.pad_token_id
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    scored = _scored(proc, seqs, media, model.config)
    with torch.no_grad():
        cpu_lp, cpu_ent = (torch.cat(t) for t in sequence_logprobs(model, scored, pad, with_entropy=True))
        gpu = sequence_logprobs(model.cuda(), scored, pad, with_entropy=True)
        bf16 = torch.cat(sequence_logprobs(model.to(torch.bfloat16), scored, pad)).cpu()
    assert all(t.is_cuda for t in gpu[0])
    torch.testing.assert_close(torch.cat(gpu[0]).cpu(), cpu_lp, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cat(gpu[1]).cpu(), cpu_ent, atol=1e-4, rtol=0)
    # bf16 moves each log-prob ~1e-3 here; its error must stay far below how much they differ by token.
    assert (bf16 - cpu_lp).abs().max() < 0.1 * cpu_lp.std()


def test_shared_prefix_on_cuda_gives_the_log_probs_and_gradients_of_one_row_per_sequence(tiny_model_dir, monkeypatch):
    """The grouped prefix attention on CUDA kernels (learners/prefix_attention.py), fp32, image groups of 4."""
    from transformers import AutoModelForImageTextToText

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    proc, seqs, media = _batch(tiny_model_dir)
    pad = proc.tokenizer.pad_token_id
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda()
    tensors = {k: media_tensors(proc, r) for k, r in media.items()}  # one media object per group: shared rows
    scored = [scored_sequence(model.config, s.prompt_token_ids, s.token_ids, tensors[s.prompt_id]) for s in seqs]

    def logprobs_and_grads(shared_prefix):
        model.zero_grad()
        logps = sequence_logprobs(model, scored, pad, shared_prefix=shared_prefix)
        sum(s.advantage * lp.mean() for s, lp in zip(seqs, logps)).backward()
        return torch.cat(logps).detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, plain_grads = logprobs_and_grads(False)
    shared, shared_grads = logprobs_and_grads(True)
    torch.testing.assert_close(shared, plain, atol=2e-5, rtol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def _step_and_export(model_dir, tmp_path, zero_stage: int) -> dict:
    """One bf16 GRPO step (beta > 0: the reference model's KL is in the loss), then the export loaded into a
    fresh model: what a rollout worker holds after the sync."""
    from transformers import AutoModelForImageTextToText

    proc, seqs, media = _batch(model_dir)
    cfg = LearnerConfig(num_ranks=1, gpus_per_rank=1, zero_stage=zero_stage, dtype="bf16", lr=1e-2, beta=0.04,
                        micro_batch_size=3, grad_clip=100.0)
    trainer = PolicyTrainer(str(model_dir), cfg)
    shard = shard_batch(seqs, media, 1, cfg, max_tokens=12)[0]
    out = {"device": next(trainer.engine.module.parameters()).device.type,
           "ref_device": next(trainer.ref.parameters()).device.type, "before": trainer.score(shard),
           "metrics": trainer.train_step(shard), "after": trainer.score(shard),
           "tokens": sum(len(s.token_ids) for s in seqs)}
    synced_dir = tmp_path / f"synced-zero{zero_stage}"
    trainer.save_hf(str(synced_dir))  # the same gather the weight sync sends
    out["exported"] = load((synced_dir / "model.safetensors").read_bytes())
    synced = AutoModelForImageTextToText.from_pretrained(synced_dir, dtype=torch.bfloat16).cuda().eval()
    scored = _scored(proc, seqs, media, synced.config)
    with torch.no_grad():  # in the same micro-batches as `score`, so padding is the same
        out["synced"] = [lp.tolist() for i in range(0, len(scored), cfg.micro_batch_size)
                         for lp in sequence_logprobs(synced, scored[i : i + cfg.micro_batch_size],
                                                    proc.tokenizer.pad_token_id,
                                                    banned_ids=banned_token_ids(proc.tokenizer))]
    return out


@pytest.fixture(scope="module")
def stepped(nccl, tiny_model_dir, tmp_path_factory):
    return {stage: _step_and_export(tiny_model_dir, tmp_path_factory.mktemp("gpu"), stage) for stage in (2, 3)}


def _flat(per_seq: list[list[float]]) -> np.ndarray:
    return np.concatenate([np.asarray(x) for x in per_seq])


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_bf16_grpo_step_on_nccl_trains_and_exports_exactly_what_the_engine_computes(
        stepped, tiny_model_dir, zero_stage):
    run = stepped[zero_stage]
    m = run["metrics"]
    assert run["device"] == run["ref_device"] == "cuda"
    assert np.isfinite(m["loss"]) and np.isfinite(m["kl"]) and 0 < m["grad_norm"] < np.inf
    assert m["tokens"] == run["tokens"]
    original = load((tiny_model_dir / "model.safetensors").read_bytes())
    assert set(run["exported"]) == set(original)  # checkpoint names, what vLLM's reload expects
    assert all(t.dtype == torch.bfloat16 for t in run["exported"].values())
    moved = sum(not torch.equal(run["exported"][k], original[k].to(torch.bfloat16)) for k in original)
    assert moved > len(original) // 2
    step_change = np.abs(_flat(run["after"]) - _flat(run["before"])).max()
    sync_error = np.abs(_flat(run["synced"]) - _flat(run["after"])).max()
    assert step_change > 0.05  # lr 1e-2 moves the log-probs by far more than the tolerance below
    assert sync_error < 1e-3, f"the synced model computes {sync_error:.2e} away from the engine"


def test_zero2_and_zero3_see_the_same_loss_and_gradient_on_cuda(stepped):
    two, three = stepped[2]["metrics"], stepped[3]["metrics"]
    assert three["loss"] == pytest.approx(two["loss"], rel=1e-2, abs=1e-4)
    assert three["grad_norm"] == pytest.approx(two["grad_norm"], rel=1e-2)
    np.testing.assert_allclose(_flat(stepped[3]["before"]), _flat(stepped[2]["before"]), atol=2e-3)


def test_grpo_step_with_the_engines_rollout_logprobs_on_cuda(nccl, tiny_model_dir):
    _, seqs, media = _batch(tiny_model_dir, seed=1, rollout_logprob=-7.6)
    cfg = LearnerConfig(num_ranks=1, gpus_per_rank=1, zero_stage=2, dtype="bf16", lr=1e-3, beta=0.0, micro_batch_size=4)
    trainer = PolicyTrainer(str(tiny_model_dir), cfg)
    metrics = trainer.train_step(shard_batch(seqs, media, 1, cfg, max_tokens=12)[0])
    assert metrics["gap_tokens"] == sum(len(s.token_ids) for s in seqs)
