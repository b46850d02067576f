"""The rollout role's settings (the `rollout:` section of qthink's config tree, composed by cluster/config.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RolloutConfig:
    """vLLM engines: how many, their resources, how they sample, and when a worker counts as dead."""

    num_workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    tensor_parallel_size: int = 1
    n: int = 8  # G responses per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    seed: int = 0
    max_model_len: int = 2048
    kv_cache_gib: float = 1.0  # VLLM_CPU_KVCACHE_SPACE on CPU; gpu_memory_utilization drives GPUs
    gpu_memory_utilization: float = 0.6
    enforce_eager: bool = True
    sync_timeout_s: float = 120.0  # the deadline of every phase of a weight sync
    sync_bucket_mb: int = 256  # weight-sync buckets (whole layers; a larger layer goes alone)
    # A generate call that neither returns nor dies within this is a hung engine: the worker is replaced and
    # its chunk re-run; a chunk that takes down max_restarts workers in a row fails the run, naming it.
    call_timeout_s: float = 1800.0
    max_restarts: int = 3
    # A batch goes out in num_workers x chunks_per_worker chunks; a worker that finishes takes the next, so
    # with more than 1, faster workers take more. But each engine call then has a smaller batch and its own
    # tail: 2 real engines here made 9% fewer tokens/s with 2 chunks each than with 1 (benchmarks/README.md).
    # 1 = the static even split verl and OpenRLHF use; raise it for workers of unequal speed.
    chunks_per_worker: int = 1
