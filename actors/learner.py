"""DeepSpeed learner ranks as Ray actors, and the group that drives them as one learner.

Rank 0 publishes its address and a free port; every rank then joins one process group (gloo on CPU,
NCCL on GPU). Weights leave the learner from rank 0, through the weight-transfer group the rollout engines
joined (actors/rollout_worker.py), so they never pass through the driver. A rank that dies leaves the others
waiting in a collective that can never complete: the group then fails within seconds, naming the dead
rank, and the run goes on from its last checkpoint (`qthink train --resume`).
"""

from __future__ import annotations

import os
import threading

import ray
from ray.exceptions import RayActorError, RayError

from actors.media import fetched
from cluster.ray_cluster import free_port
from learners.config import LearnerConfig
from learners.policy_trainer import PolicyTrainer, TrainShard, merge_rank_metrics, shard_batch
from rollout.records import RolloutRequest, RolloutSample


def with_media(shard: TrainShard) -> TrainShard:
    """The shard with the media that wait in the object store (`RequestRef`) fetched on this rank's node."""
    shard.media = dict(zip(shard.media, fetched(list(shard.media.values()))))
    return shard


@ray.remote
class Learner:
    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size

    def master_address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), free_port(host="")

    def setup(self, model_dir: str, cfg: LearnerConfig, addr: str, port: int, temperature: float) -> int:
        import torch

        os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0")
        on_gpu = cfg.gpus_per_rank > 0
        # Always set: a DS_ACCELERATOR=cpu inherited from the driver's environment would train a GPU rank on the CPU.
        os.environ["DS_ACCELERATOR"] = "cuda" if on_gpu else "cpu"
        if not on_gpu:
            torch.set_num_threads(max(1, cfg.cpus_per_rank))
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
        self.trainer = PolicyTrainer(model_dir, cfg, self.world_size, temperature)
        return os.getpid()

    def train_step(self, shard) -> dict:
        return self.trainer.train_step(with_media(shard))

    def sft_step(self, shard) -> dict:
        return self.trainer.sft_step(with_media(shard))

    def score(self, shard) -> list[list[float]]:
        return self.trainer.score(with_media(shard))

    def start_stage(self, *schedule) -> None:
        self.trainer.start_stage(*schedule)

    def reset_reference(self) -> None:
        self.trainer.reset_reference()

    def weight_update_info(self, bucket_bytes: int) -> dict:
        return self.trainer.weight_sender(bucket_bytes).update_info()

    def connect_weight_sender(self, address: str, port: int, world_size: int, timeout_s: float) -> None:
        backend = "nccl" if self.trainer.cfg.gpus_per_rank > 0 else "gloo"
        self.trainer.sender.connect(address, port, world_size, timeout_s, backend)

    def send_weights(self) -> int:
        return self.trainer.sender.send()

    def save_hf(self, out_dir: str) -> None:
        self.trainer.save_hf(out_dir)

    def save_state(self, ckpt_dir: str, tag: str) -> None:
        self.trainer.save_state(ckpt_dir, tag)

    def load_state(self, ckpt_dir: str, tag: str) -> None:
        self.trainer.load_state(ckpt_dir, tag)


class LearnerRankError(RuntimeError):
    """A learner rank died; ZeRO's collectives cannot go on without it."""


class LearnerGroup:
    """All ranks of one DeepSpeed learner; every call goes to every rank (ZeRO collectives need them).
    `temperature`: the rollout's, the distribution the learner scores responses under."""

    def __init__(self, model_dir: str, cfg: LearnerConfig, max_tokens: int, actor_options=None,
                 temperature: float = 1.0):
        self.cfg, self.max_tokens = cfg, max_tokens
        options = actor_options or (lambda rank: {"num_cpus": cfg.cpus_per_rank, "num_gpus": cfg.gpus_per_rank})
        self.ranks = [Learner.options(**options(r)).remote(r, cfg.num_ranks) for r in range(cfg.num_ranks)]
        addr, port = ray.get(self.ranks[0].master_address.remote())
        self.pids = ray.get([r.setup.remote(model_dir, cfg, addr, port, temperature) for r in self.ranks])
        # Held through every update. A weight sync from another thread (a rollout worker replaced during a
        # one-step-off rollout) waits for the step to end, and `steps` tells it which weights it then sends.
        self.stepping = threading.RLock()
        self.steps = 0

    def _call(self, method: str, per_rank: list[tuple]) -> list:
        """`method(*per_rank[k])` on rank k, for every rank; the results in rank order."""
        refs = [getattr(r, method).remote(*args) for r, args in zip(self.ranks, per_rank)]
        try:
            return ray.get(refs)  # raises as soon as one rank fails, while the others may wait on it forever
        except RayError as e:
            dead = self._dead_ranks(refs)
            if not dead:
                raise
            raise LearnerRankError(f"learner {', '.join(dead)} died during {method}; the other ranks cannot go "
                                   "on without it: `qthink train --resume` goes on from the last checkpoint") from e

    def _dead_ranks(self, refs: list) -> list[str]:
        """The ranks whose call ended with their death. A death can surface first as the failed collective
        of a rank that is still alive, so the other calls get a few seconds to report."""
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=5)
        dead = []
        for k in (k for k, ref in enumerate(refs) if ref in ready):
            try:
                ray.get(refs[k])
            except RayActorError:
                dead.append(f"rank {k} (pid {self.pids[k]})")
            except RayError:  # failed, but alive
                pass
        return dead

    def _each(self, method: str, *args) -> list:
        return self._call(method, [args] * len(self.ranks))

    def _step(self, method: str, sequences: list[RolloutSample], media: dict[str, RolloutRequest],
              off_policy: bool = False) -> dict:
        shards = shard_batch(sequences, media, len(self.ranks), self.cfg, self.max_tokens, off_policy)
        with self.stepping:
            metrics = merge_rank_metrics(self._call(method, [(s,) for s in shards]))
            self.steps += 1
        return metrics

    def train_step(self, sequences: list[RolloutSample], media: dict[str, RolloutRequest],
                   off_policy: bool = False) -> dict:
        return self._step("train_step", sequences, media, off_policy)

    def sft_step(self, sequences: list[RolloutSample], media: dict[str, RolloutRequest]) -> dict:
        return self._step("sft_step", sequences, media)

    def score(self, sequences: list[RolloutSample], media: dict[str, RolloutRequest]) -> list[list[float]]:
        shards = shard_batch(sequences, media, len(self.ranks), self.cfg, self.max_tokens)
        return [lp for part in self._call("score", [(s,) for s in shards]) for lp in part]

    def start_stage(self, lr: float, warmup_steps: int, schedule: str, total_steps: int, restart: bool) -> None:
        self._each("start_stage", lr, warmup_steps, schedule, total_steps, restart)

    def reset_reference(self) -> None:
        self._each("reset_reference")

    def save_hf(self, out_dir: str) -> None:
        self._each("save_hf", out_dir)

    def save_state(self, ckpt_dir: str, tag: str) -> None:
        self._each("save_state", ckpt_dir, tag)

    def load_state(self, ckpt_dir: str, tag: str) -> None:
        self._each("load_state", ckpt_dir, tag)
