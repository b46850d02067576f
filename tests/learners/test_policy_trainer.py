"""How a global batch is cut for the learner ranks: shards and micro-batches (no model needed)."""

import numpy as np

from learners.config import LearnerConfig
from learners.policy_trainer import shard_batch, token_budget_plan
from rollout.records import RolloutRequest, RolloutSample


def _batch(groups: list[tuple[int, list[int]]]) -> tuple[list[RolloutSample], dict]:
    """One group per (prompt length, response lengths)."""
    seqs = [RolloutSample(f"p{k}", [0] * prompt, [1] * n) for k, (prompt, lengths) in enumerate(groups)
            for n in lengths]
    return seqs, {f"p{k}": RolloutRequest(f"p{k}", "image") for k in range(len(groups))}


def test_token_budget_packs_whole_groups_within_the_padded_budget():
    seqs, _ = _batch([(20, [3, 5]), (20, [4, 4]), (100, [2, 9]), (20, [1, 2]), (20, [6, 3])])
    plan = token_budget_plan(seqs, budget=110)
    assert plan == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9]]  # 4 x 25 = 100; the long group alone; 4 x 26 = 104
    for micro in plan:
        prompts = {seqs[i].prompt_id for i in micro}
        assert all(sum(s.prompt_id == p for s in seqs) == sum(seqs[i].prompt_id == p for i in micro) for p in prompts)
        cost = len(micro) * max(len(seqs[i].prompt_token_ids) + len(seqs[i].token_ids) for i in micro)
        assert cost <= 110 or len(prompts) == 1
    assert token_budget_plan(seqs, budget=10_000) == [list(range(10))]


def test_with_a_shared_prefix_a_group_costs_one_row_of_its_prompt_and_all_its_responses():
    seqs, _ = _batch([(20, [3, 5]), (20, [4, 4]), (100, [2, 9]), (20, [1, 2])])
    # rows of 28, 28, 111, 23 tokens: two groups fit 2 x 28 = 56; the long one alone; the last one alone
    assert token_budget_plan(seqs, budget=60, shared_prefix=True) == [[0, 1, 2, 3], [4, 5], [6, 7]]
    # one row per sequence, the first two groups cost 4 x 25 = 100 and no longer fit
    assert token_budget_plan(seqs, budget=60) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_every_rank_gets_as_many_micro_batches_and_the_loss_norm_of_the_whole_batch():
    seqs, media = _batch([(20, [3, 5]), (100, [2, 9]), (20, [1, 2])])
    for options in ({"micro_batch_size": 1}, {"micro_batch_size": 8, "max_tokens_per_micro": 60}):
        shards = shard_batch(seqs, media, 4, LearnerConfig(**options), max_tokens=16)
        counts = {len(s.micro_batches) for s in shards}
        assert len(counts) == 1, options
        covered = sorted(seqs.index(s.sequences[i]) for s in shards for m in s.micro_batches for i in m)
        assert covered == list(range(len(seqs)))  # every sequence once, in some micro-batch
        assert all(s.norm == {"tokens": 22, "seqs": 6, "max_tokens": 16} for s in shards)
    # by count the split is numpy's even one, as before token budgets existed
    (shard,) = shard_batch(seqs, media, 1, LearnerConfig(micro_batch_size=4), max_tokens=16)
    assert shard.micro_batches == [idx.tolist() for idx in np.array_split(np.arange(6), 2)]
