"""A stand-in rollout worker that takes modelled time but no CPU, for orchestration benchmarks and tests.

It sleeps `seconds_per_token` for every token it would generate, so N of them show how well the pool
keeps N engines busy, without needing N CPUs or GPUs (benchmarks/rollout_throughput.py --simulate-workers).
Weight syncs are real: it joins the transfer group and receives every bucket (rollout/weight_transfer.py),
only loading them into no model.
"""

from __future__ import annotations

import os
import time

import ray

from rollout.records import RolloutRequest, RolloutSample
from rollout.weight_transfer import BucketReceiver, metas_from_info, open_group


class ModelessReceiver:
    """A rollout worker's side of weight syncs, for stand-in workers: the real group and wire, no model."""

    def init_weight_transfer(self, init_info: dict) -> None:
        self.group = open_group(init_info["master_address"], init_info["master_port"], init_info["rank_offset"],
                                init_info["world_size"], init_info["timeout_s"])

    def close_weight_transfer(self) -> None:
        if getattr(self, "group", None) is not None:
            self.group.close()
            self.group = None

    def receive_weights(self, update_info: dict, version: int) -> int:
        metas = metas_from_info(update_info["names"], update_info["dtype_names"], update_info["shapes"])
        receiver = BucketReceiver(metas, update_info["buckets"])
        received = receiver.receive(self.group, lambda pairs: None)
        self.version = version
        return received



@ray.remote(num_cpus=0)
class SimulatedRolloutWorker(ModelessReceiver):
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

    def pid(self) -> int:
        return os.getpid()

    def chunks_done(self) -> int:
        return self.chunks
