import numpy as np

from cluster.grpo import RolloutBatch, training_batch
from rewards import PRESETS, score_batch
from rollout.records import RolloutRequest, RolloutSample


def _answer(score: float) -> str:
    return f"<think>the image is sharp</think><answer>{score:.2f}</answer>"


def test_training_batch_is_the_kept_originals_with_their_group_advantage_and_sampling_logprobs():
    requests = [RolloutRequest("a", "image"), RolloutRequest("b", "image"), RolloutRequest("b", "video",
                                                                                           variant="perturbed")]
    scores = {"a": [4.0, 1.0], "b": [3.0, 3.0]}  # b's answers are equal: no signal in that group
    groups = [[RolloutSample(r.prompt_id, [1, 2], [3, 4, 5], [-0.1 * j, -0.2, -0.3], _answer(scores[r.prompt_id][j]),
                             policy_version=4 + j, variant=r.variant, index=j) for j in range(2)] for r in requests]
    batch = RolloutBatch({}, [], requests, groups, 0.0)
    flat = batch.responses
    rewards = score_batch(PRESETS["q-ponder"], [s.text for s in flat], [4.0] * 6, [s.prompt_id for s in flat],
                          [s.variant for s in flat])
    train = training_batch(batch, rewards, 2, "grpo", filter_zero_variance=True, version=5)
    assert [(s.prompt_id, s.index) for s in train.sequences] == [("a", 0), ("a", 1)]  # b filtered, copies never trained
    assert train.sequences[0].advantage > 0 > train.sequences[1].advantage
    np.testing.assert_allclose([s.advantage for s in train.sequences], [2 ** -0.5, -(2 ** -0.5)], rtol=1e-5)
    assert train.sequences[1].logprobs == [-0.1, -0.2, -0.3] and train.sequences[0].token_ids == [3, 4, 5]
    assert train.media == {"a": requests[0], "b": requests[1]}  # the originals' media, by prompt id
    assert (train.groups_kept, train.staleness) == (1, 1)
    kept_all = training_batch(batch, rewards, 2, "grpo", filter_zero_variance=False, version=5)
    assert [s.advantage for s in kept_all.sequences][2:] == [0.0, 0.0]
