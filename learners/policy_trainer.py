"""One learner rank's work: GRPO and SFT steps on a DeepSpeed-wrapped Qwen2.5-VL, checkpoints, export.

One optimizer step per batch (the papers' TRL setting, num_iterations = 1): the old policy IS the current
one, so old log-probs are the detached current ones and no extra forward is paid; the engine's sampling
log-probs are still compared with the learner's (`rollout_logprob_gap`) to catch an engine/learner
mismatch early. Micro-batches accumulate gradients; the boundary is marked by hand so every step may
have a different micro-batch count; every rank must run the same count (the driver says how many).
"""

from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from learners.config import LearnerConfig
from learners.deepspeed_setup import build_engine, lr_factor, start_schedule
from learners.logprobs import ScoredSequence, media_tensors, scored_sequence, sequence_logprobs
from learners.lora import base_parameters, fold_into_base, with_adapters
from learners.losses import aggregate, clipped_policy_loss, kl_estimate, pad_stack, sft_loss, truncated_is_weights
from learners.weights import WeightSender, full_state_dict, gathered
from rollout.engine import banned_token_ids
from rollout.records import RolloutRequest, RolloutSample


@dataclass
class TrainShard:
    """This rank's part of a global batch. `norm` holds global counts (tokens, seqs, max_tokens) so the
    loss normalisation does not depend on how the batch was split."""

    sequences: list[RolloutSample]
    media: dict[str, RolloutRequest]  # by prompt_id: the media each sequence's pixels are rebuilt from
    # indices into `sequences`, one list per micro-batch, as many on every rank; [] marks a stand-in micro-batch
    micro_batches: list[list[int]]
    norm: dict = field(default_factory=dict)
    off_policy: bool = False  # responses from an older policy: the engine's log-probs are the behaviour policy
    # a stand-in sequence (its media in `media`) for a rank with no sequence of its own: it trains with weight 0
    padding: list[RolloutSample] = field(default_factory=list)


class PolicyTrainer:
    """`temperature` is the rollout's: responses are scored under the distribution they were drawn from."""

    def __init__(self, model_dir: str, cfg: LearnerConfig, world_size: int = 1, temperature: float = 1.0):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.cfg, self.world_size = cfg, world_size
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.sampling = dict(temperature=temperature, banned_ids=banned_token_ids(self.processor.tokenizer))
        dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype)
        if cfg.lora.rank:
            model = with_adapters(model, cfg)  # the reference is this model with its adapters disabled
        # Copied whole, before ZeRO-3 partitions the model; DeepSpeed moves only the engine's copy to the GPU.
        self.ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.beta > 0 and not cfg.lora.rank else None
        self.folded = False  # LoRA: adapters folded into the base weights (reset_reference), saved with checkpoints
        self.engine = build_engine(model, cfg)
        self.sender: WeightSender | None = None
        if self.ref is not None:
            self.ref.to(self.engine.device)

    def _scored(self, shard: TrainShard, seqs: list[RolloutSample], cache: dict) -> list[ScoredSequence]:
        for s in seqs:
            if s.prompt_id not in cache:
                cache[s.prompt_id] = media_tensors(self.processor, shard.media[s.prompt_id])
        config = self.engine.module.config
        return [scored_sequence(config, s.prompt_token_ids, s.token_ids, cache[s.prompt_id]) for s in seqs]

    def _logprobs(self, model, scored: list[ScoredSequence], with_entropy: bool = False, temperature=None):
        sampling = self.sampling if temperature is None else {**self.sampling, "temperature": temperature}
        return sequence_logprobs(model, scored, self.pad_id, **sampling, with_entropy=with_entropy,
                                 shared_prefix=self.cfg.shared_prefix)

    @torch.no_grad()
    def _reference_logprobs(self, scored: list[ScoredSequence]):
        if self.ref is not None:
            return self._logprobs(self.ref, scored)
        with self.engine.module.disable_adapter():  # LoRA
            return self._logprobs(self.engine, scored)

    def _micro_batches(self, shard: TrainShard):
        """(sequences, loss weight) per micro-batch, the same count on every rank. A micro-batch with no
        sequence of its own (fewer sequences than ranks x micro-batches) runs a real forward and backward
        on a stand-in sequence with weight 0, as verl and OpenRLHF pad: under ZeRO-3 every rank's forward
        gathers the same parameters in the same order (a rank that skipped it left the others' gathers
        unmatched), and under ZeRO-2 the gradient buckets fill and reduce in the same order."""
        stand_in = shard.sequences[:1] or shard.padding
        for i, idx in enumerate(shard.micro_batches):
            self.engine.set_gradient_accumulation_boundary(i == len(shard.micro_batches) - 1)
            seqs = [shard.sequences[j] for j in idx]
            yield (seqs, 1.0) if seqs else (stand_in, 0.0)

    def _backward(self, loss: torch.Tensor) -> None:
        # DeepSpeed averages gradients over ranks; the loss is already normalised globally, so undo that.
        self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
        self.engine.step()

    def _lr(self) -> float:
        """The rate this step's update uses (read before the step moves the schedule on)."""
        return float(self.engine.lr_scheduler.optimizer.param_groups[0]["lr"])

    def train_step(self, shard: TrainShard) -> dict:
        cfg = self.cfg
        sums = dict(loss=0.0, kl=0.0, entropy=0.0, clipped=0.0, tokens=0.0, gap=0.0, gap_tokens=0.0,
                    is_weight=0.0, is_capped=0.0, is_max=0.0, lr=self._lr())
        self.engine.train()
        cache: dict = {}
        for seqs, weight in self._micro_batches(shard):
            scored = self._scored(shard, seqs, cache)
            logps, ents = self._logprobs(self.engine, scored, with_entropy=True)
            logp, mask = pad_stack(logps)
            adv = torch.tensor([s.advantage for s in seqs], dtype=logp.dtype, device=logp.device)
            rollout = pad_stack([torch.tensor(s.logprobs or [0.0] * len(s.token_ids), device=logp.device,
                                              dtype=logp.dtype) for s in seqs])[0]
            old = rollout if shard.off_policy else logp.detach()
            per_token, clipped = clipped_policy_loss(logp, old, adv, cfg.clip_low, cfg.clip_high, cfg.dual_clip)
            stats = {}  # this micro-batch's sums, kept only for real sequences (weight 1)
            if cfg.rollout_is == "tis" and not shard.off_policy:
                is_weight, capped = truncated_is_weights(old, rollout, cfg.rollout_is_cap)
                per_token = per_token * is_weight
                stats |= {"is_weight": float((is_weight * mask).sum()), "is_capped": float((capped & mask).sum())}
                sums["is_max"] = max(sums["is_max"], weight * float(is_weight[mask].max()))
            if cfg.beta > 0:
                ref_logp, _ = pad_stack(self._reference_logprobs(scored))
                kl = kl_estimate(logp, ref_logp, cfg.kl_estimator)
                per_token = per_token + cfg.beta * kl
                stats["kl"] = float((kl.detach() * mask).sum())
            loss = aggregate(per_token, mask, cfg.loss_agg, shard.norm) * weight
            self._backward(loss)
            if not weight:
                continue
            for key, value in stats.items():
                sums[key] += value
            sums["loss"] += float(loss.detach())
            sums["entropy"] += float(sum(e.sum() for e in ents))
            sums["clipped"] += float((clipped & mask).sum())
            sums["tokens"] += float(mask.sum())
            for s, lp in zip(seqs, logps):
                if s.logprobs:
                    sums["gap"] += float(np.abs(np.asarray(s.logprobs) - lp.detach().cpu().numpy()).sum())
                    sums["gap_tokens"] += len(s.logprobs)
        sums["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        return sums

    def sft_step(self, shard: TrainShard) -> dict:
        """Cross-entropy on response tokens at temperature 1 (Q-Ponder's cold start); same micro-batching as GRPO."""
        self.engine.train()
        sums, cache = dict(loss=0.0, tokens=0.0, lr=self._lr()), {}
        for seqs, weight in self._micro_batches(shard):
            logp, mask = pad_stack(self._logprobs(self.engine, self._scored(shard, seqs, cache), temperature=1.0))
            loss = sft_loss(logp, mask, shard.norm) * weight
            self._backward(loss)
            sums["loss"] += float(loss.detach())
            sums["tokens"] += weight * float(mask.sum())
        sums["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        return sums

    @torch.no_grad()
    def reset_reference(self) -> None:
        """The KL anchor becomes the current policy. GRPO after SFT must regularise towards the SFT model
        (Q-Ponder's stage 2 loads the cold-start checkpoint as its reference), not towards the weights the
        run started from: a random tiny model's KL to its SFT self is ~6 nats/token (measured) and beta > 0
        then drags GRPO back to noise. Every rank calls it (each ZeRO-3 gather is a collective). With LoRA
        the adapters are folded into the base (learners/lora.py), once they have trained at all."""
        if self.cfg.lora.rank:
            if self.engine.global_steps:
                fold_into_base(self.engine.module)
                self.folded = True
            return
        if self.ref is None:
            return
        for ref_param, param in zip(self.ref.parameters(), self.engine.module.parameters()):
            with gathered(param, self.cfg.zero_stage):
                ref_param.copy_(param)

    def _anchor(self) -> dict[str, torch.Tensor]:
        """The weights of the KL anchor that model_dir does not hold: the reference copy, or with LoRA the
        base weights once adapters were folded into them."""
        if self.ref is not None:
            return dict(self.ref.named_parameters())
        return base_parameters(self.engine.module) if self.folded else {}

    def start_stage(self, lr: float, warmup_steps: int, schedule: str, total_steps: int, restart: bool) -> None:
        """SFT and GRPO each train at their own rate, warmup and schedule (deepspeed_setup.start_schedule)."""
        start_schedule(self.engine.lr_scheduler, lr, lr_factor(warmup_steps, schedule, total_steps), restart)

    @torch.no_grad()
    def score(self, shard: TrainShard) -> list[list[float]]:
        """Current log-probs of each response (eval mode): what the engine should report after a sync. The
        same micro-batches as a step, stand-ins included: under ZeRO-3 every forward is a collective."""
        self.engine.eval()
        cache: dict = {}
        out = []
        for seqs, weight in self._micro_batches(shard):
            logps = self._logprobs(self.engine, self._scored(shard, seqs, cache))
            out += [lp.tolist() for lp in logps] if weight else []
        return out

    def weight_sender(self, bucket_bytes: int) -> WeightSender:
        if self.sender is None:
            self.sender = WeightSender(self.engine.module, self.cfg.zero_stage, torch.distributed.get_rank(),
                                       bucket_bytes, skip_vision=self.cfg.freeze_vision)
        return self.sender

    def save_hf(self, out_dir: str) -> None:
        """A HF model dir (safetensors + processor) that transformers and vLLM load."""
        from safetensors.torch import save_file

        state = full_state_dict(self.engine.module, self.cfg.zero_stage)
        if torch.distributed.get_rank() == 0:
            self.engine.module.config.save_pretrained(out_dir)
            self.engine.module.generation_config.save_pretrained(out_dir)
            self.processor.save_pretrained(out_dir)
            save_file({k: v.contiguous() for k, v in state.items()}, f"{out_dir}/model.safetensors",
                      metadata={"format": "pt"})

    def save_state(self, ckpt_dir: str, tag: str) -> None:
        """Model (with LoRA: adapters only), optimizer, scheduler, the KL anchor and every RNG this rank uses
        (restored bit-for-bit on resume)."""
        from safetensors.torch import save_file

        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        # with LoRA the frozen base stays out (ZeRO-2 would save it whole): model_dir holds it, or the anchor
        self.engine.save_checkpoint(ckpt_dir, tag=tag, client_state={"rng": rng, "folded": self.folded},
                                    exclude_frozen_parameters=bool(self.cfg.lora.rank))
        anchor = self._anchor()
        if anchor and torch.distributed.get_rank() == 0:
            save_file({k: v.detach().contiguous() for k, v in anchor.items()},
                      f"{ckpt_dir}/{tag}/reference.safetensors")

    @torch.no_grad()
    def load_state(self, ckpt_dir: str, tag: str) -> None:
        from safetensors.torch import load_file

        _, client = self.engine.load_checkpoint(ckpt_dir, tag=tag, load_module_strict=not self.cfg.lora.rank)
        self.folded = client.get("folded", False)
        reference = f"{ckpt_dir}/{tag}/reference.safetensors"
        if os.path.exists(reference):
            anchor = self._anchor()
            for name, tensor in load_file(reference).items():
                anchor[name].copy_(tensor)
        rng = client["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])


def shard_batch(sequences: list[RolloutSample], media: dict[str, RolloutRequest], world_size: int,
                cfg: LearnerConfig, max_tokens: int, off_policy: bool = False) -> list[TrainShard]:
    """Contiguous, balanced shards (a group's media is sent once per rank) with the same micro-batch count on
    every rank and the global normalisers of the loss, so neither the split nor the micro-batching changes
    the update. Micro-batches hold `cfg.micro_batch_size` sequences, or, with `cfg.max_tokens_per_micro`,
    whole groups up to that many padded tokens (token_budget_plan)."""
    norm = {"tokens": max(1, sum(len(s.token_ids) for s in sequences)), "seqs": max(1, len(sequences)),
            "max_tokens": max_tokens}
    parts = [[sequences[i] for i in idx] for idx in np.array_split(np.arange(len(sequences)), world_size)]
    if cfg.max_tokens_per_micro:
        plans = [token_budget_plan(seqs, cfg.max_tokens_per_micro, cfg.shared_prefix) for seqs in parts]
    else:
        num_micro = max(1, max(-(-len(p) // cfg.micro_batch_size) for p in parts))
        plans = [[idx.tolist() for idx in np.array_split(np.arange(len(seqs)), num_micro)] for seqs in parts]
    count = max(1, max(len(plan) for plan in plans))
    shards = []
    for seqs, plan in zip(parts, plans):
        padding = [] if seqs or not sequences else sequences[:1]
        keys = {s.prompt_id for s in seqs + padding}
        micro = plan + [[] for _ in range(count - len(plan))]
        shards.append(TrainShard(seqs, {k: media[k] for k in keys}, micro, norm, off_policy, padding))
    return shards


def token_budget_plan(seqs: list[RolloutSample], budget: int, shared_prefix: bool = False) -> list[list[int]]:
    """Micro-batches of whole groups (runs of one prompt id), each within `budget` tokens as the forward
    pays for them: rows x the longest row, since a micro-batch is padded to its longest. A row is one
    sequence, or with `shared_prefix` a whole group (its prompt once, then every response). A mixed batch of
    short image and long video prompts then runs many images or few videos per forward, not a fixed count.
    A group alone above the budget still gets a micro-batch of its own."""
    groups: list[list[int]] = []
    for i, s in enumerate(seqs):
        if groups and seqs[groups[-1][-1]].prompt_id == s.prompt_id:
            groups[-1].append(i)
        else:
            groups.append([i])

    def rows(group: list[int]) -> list[int]:
        lengths = [len(seqs[i].token_ids) for i in group]
        prompt = len(seqs[group[0]].prompt_token_ids)
        return [prompt + sum(lengths)] if shared_prefix else [prompt + n for n in lengths]

    plan, row_lengths = [], []
    for group in groups:
        lengths = rows(group)
        if plan and (len(row_lengths) + len(lengths)) * max(row_lengths + lengths) <= budget:
            plan[-1] += group
            row_lengths += lengths
        else:
            plan.append(list(group))
            row_lengths = lengths
    return plan


def merge_rank_metrics(per_rank: list[dict], prefix: str = "") -> dict:
    """Rank sums -> batch metrics (token means; the loss is already globally normalised, so it adds)."""
    total = {k: sum(m.get(k, 0.0) for m in per_rank) for k in per_rank[0]}
    tokens = max(1.0, total["tokens"])
    out = {"loss": total["loss"], "grad_norm": per_rank[0]["grad_norm"], "response_tokens": total["tokens"]}
    for k in ("kl", "entropy"):
        if k in total:
            out[k] = total[k] / tokens
    if "clipped" in total:
        out["clip_frac"] = total["clipped"] / tokens
    if total.get("gap_tokens"):
        out["rollout_logprob_gap"] = total["gap"] / total["gap_tokens"]
    if total.get("is_weight"):  # rollout_is: tis
        out |= {"is_weight_mean": total["is_weight"] / tokens, "is_capped_frac": total["is_capped"] / tokens,
                "is_weight_max": max(m["is_max"] for m in per_rank)}
    if "lr" in per_rank[0]:
        out["lr"] = per_rank[0]["lr"]
    return {prefix + k: v for k, v in out.items()}
