"""A stand-in rollout worker that takes modelled time but no CPU, for orchestration benchmarks and tests.

It sleeps `seconds_per_token` for every token it would generate, so N of them show how well the pool
keeps N engines busy, without needing N CPUs or GPUs (benchmarks/rollout_throughput.py --simulate-workers).
"""

from __future__ import annotations

import time

import ray

from rollout.records import RolloutRequest, RolloutSample


@ray.remote(num_cpus=0)
class SimulatedRolloutWorker:
    def __init__(self, seconds_per_token: float, max_tokens: int, n: int):
        self.seconds_per_token, self.max_tokens, self.n = seconds_per_token, max_tokens, n
        self.version = 0
        self.chunks = 0

    def generate(self, requests: list[RolloutRequest], n: int | None = None, **overrides) -> list[list[RolloutSample]]:
        n = n or self.n
        tokens = overrides.get("max_tokens", self.max_tokens)
        time.sleep(len(requests) * n * tokens * self.seconds_per_token)
        self.chunks += 1
        return [[RolloutSample(r.prompt_id, [0], [1] * tokens, [-1.0] * tokens, finish_reason="length",
                               policy_version=self.version, variant=r.variant, index=j) for j in range(n)]
                for r in requests]

    def load_weights(self, blob, version: int) -> int:
        self.version = version
        return len(blob)

    def chunks_done(self) -> int:
        return self.chunks
