"""RewardPool: same rewards for 1, 2 and 4 workers; a worker dying mid-batch is replaced and re-run."""

import os
import threading
import time

import numpy as np
import pytest
import ray

from actors.reward_worker import RewardPool, RewardWorker
from rewards import PRESETS, score_batch

SMALL = {"num_cpus": 0.25}  # four workers fit beside the driver on 2 CPUs


def video_batch(n_prompts=6, size=4, seed=0):
    """Originals and their perturbed copies, reasoning and scores near the MOS, a few unparsable."""
    rng = np.random.default_rng(seed)
    mos = np.round(rng.uniform(1, 5, n_prompts), 2)
    responses, ids, variants, row_mos = [], [], [], []
    for variant, noise in (("original", 0.3), ("perturbed", 1.0)):
        for p in range(n_prompts):
            for _ in range(size):
                score = np.clip(mos[p] + rng.normal(0, noise), 1, 5)
                text = (
                    f"<think>looks good</think><answer>{score:.2f}</answer>"
                    if rng.random() > 0.1
                    else "no idea"
                )
                responses.append(text)
                ids.append(f"v{p}")
                variants.append(variant)
                row_mos.append(mos[p])
    return responses, row_mos, ids, variants


def assert_same(result, expected):
    assert list(result.components) == list(expected.components)
    for name in expected.components:
        assert np.array_equal(result.components[name], expected.components[name]), name
    assert np.array_equal(result.total, expected.total) and result.parse_failures == expected.parse_failures


@pytest.mark.parametrize("preset", ["qthink", "preresq-iqa"])
def test_same_rewards_for_1_2_4_workers(ray_local, preset):
    responses, mos, ids, variants = video_batch()
    expected = score_batch(PRESETS[preset], responses, mos, ids, variants)
    for n in (1, 2, 4):
        pool = RewardPool(n, PRESETS[preset], worker_options=SMALL)
        assert_same(pool.score(responses, mos, ids, variants), expected)
        pool.shutdown()


def test_worker_exiting_mid_batch_is_replaced(ray_local, tmp_path):
    marker = tmp_path / "died"

    class ExitOnceWorker(RewardWorker):
        def score_responses(self, responses, mos):
            if not marker.exists():
                marker.touch()
                os._exit(1)  # the process dies inside the call
            return super().score_responses(responses, mos)

    responses, mos, ids, variants = video_batch(seed=1)
    pool = RewardPool(2, PRESETS["qthink"], worker_options=SMALL, worker_cls=ExitOnceWorker)
    first = list(pool.workers)
    result = pool.score(responses, mos, ids, variants)
    assert marker.exists() and pool.workers != first  # one worker was replaced
    assert_same(result, score_batch(PRESETS["qthink"], responses, mos, ids, variants))
    pool.shutdown()


def test_worker_killed_mid_batch_is_replaced(ray_local):
    class SlowWorker(RewardWorker):
        def score_responses(self, responses, mos):
            time.sleep(1.5)
            return super().score_responses(responses, mos)

    responses, mos, ids, variants = video_batch(seed=2)
    pool = RewardPool(2, PRESETS["vqathinker"], worker_options=SMALL, worker_cls=SlowWorker)
    victim, scored = pool.workers[0], {}
    scoring = threading.Thread(target=lambda: scored.update(result=pool.score(responses, mos, ids, variants)))
    scoring.start()
    time.sleep(0.5)
    ray.kill(victim)
    scoring.join(timeout=60)
    assert pool.workers[0] is not victim
    assert_same(scored["result"], score_batch(PRESETS["vqathinker"], responses, mos, ids, variants))
    pool.shutdown()


def test_a_hung_worker_is_replaced_after_the_deadline_and_its_shard_rescored(ray_local, tmp_path):
    marker = tmp_path / "hung"

    class HangOnceWorker(RewardWorker):
        def score_responses(self, responses, mos):
            if not marker.exists():
                marker.touch()
                time.sleep(3600)  # neither returns nor dies
            return super().score_responses(responses, mos)

    responses, mos, ids, variants = video_batch(seed=3)
    # the deadline is above a worker's start on a loaded machine: only the hung call may reach it
    pool = RewardPool(2, PRESETS["qthink"], worker_options=SMALL, worker_cls=HangOnceWorker, call_timeout_s=15)
    first = list(pool.workers)
    expected = score_batch(PRESETS["qthink"], responses, mos, ids, variants)
    assert_same(pool.score(responses, mos, ids, variants), expected)
    assert marker.exists() and sum(a is not b for a, b in zip(pool.workers, first)) == 1
    pool.shutdown()


def test_the_same_prompt_in_two_adjacent_groups_is_scored_as_two_groups(ray_local):
    # an epoch boundary or a manifest smaller than one step draws a prompt twice in a row, perturbed copies too
    responses, mos, ids, variants = video_batch(n_prompts=4, size=4)
    repeated = ["v1" if pid == "v2" else pid for pid in ids]  # v1 v1 back to back, in both variants
    renamed = score_batch(PRESETS["vqathinker"], responses, mos, ids, variants)  # what the two groups are worth apart
    pool = RewardPool(2, PRESETS["vqathinker"], worker_options=SMALL, group_size=4)
    assert_same(pool.score(responses, mos, repeated, variants), renamed)
    pool.shutdown()
    with pytest.raises(ValueError, match="same number of consecutive responses"):  # G unknown: ambiguous
        score_batch(PRESETS["vqathinker"], responses, mos, repeated, variants)
