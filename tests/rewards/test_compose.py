"""Batch layout, variants, scope slices and sharded scoring."""

import numpy as np
import pytest

from rewards import PRESETS, ResponseScores, score_batch, score_gathered, score_responses


def batch(n_prompts, size, seed=0):
    rng = np.random.default_rng(seed)
    responses = [f"<think>fine</think><answer>{v:.2f}</answer>" for v in rng.uniform(1, 5, n_prompts * size)]
    mos = np.repeat(np.round(rng.uniform(1, 5, n_prompts), 2), size)
    return responses, mos, np.repeat(np.arange(n_prompts), size).tolist()


@pytest.mark.parametrize("preset", ["qthink", "preresq-iqa", "vqathinker"])
def test_shards_gathered_equal_whole_batch(preset):
    preset = PRESETS[preset]
    responses, mos, ids = batch(6, 4)
    whole = score_batch(preset, responses, mos, ids)
    cuts = [0, 5, 6, 17, 24]
    shards = [score_responses(preset, responses[a:b], mos[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    gathered = score_gathered(preset, responses, ResponseScores.concat(shards), mos, ids)
    for name in whole.components:
        assert np.array_equal(whole.components[name], gathered.components[name])


def test_scope_slices_rank_like_per_gpu_batches():
    responses, mos, ids = batch(6, 3)
    sliced = score_batch(PRESETS["visualquality-r1"], responses, mos, ids, scope=2)
    first_two = score_batch(PRESETS["visualquality-r1"], responses[:6], mos[:6], ids[:6])
    assert np.array_equal(sliced.components["rank"][:6], first_two.components["rank"])
    assert np.all(score_batch(PRESETS["visualquality-r1"], responses, mos, ids, scope=1).components["rank"] == 0)


def test_uneven_groups_are_rejected():
    with pytest.raises(ValueError, match="same number of consecutive responses"):
        score_batch(PRESETS["qthink"], ["a", "b", "c"], [3, 3, 3], [0, 0, 1])


def test_unknown_variant_and_misaligned_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown variant"):
        score_batch(PRESETS["qthink"], ["a", "b"], [3, 3], [0, 1], ["original", "shuffled"])
    with pytest.raises(ValueError, match="align"):
        score_batch(PRESETS["qthink"], ["a", "b"], [3], [0, 1])


def test_a_prompt_drawn_twice_in_a_row_is_two_groups_when_g_is_given():
    responses, mos, ids = batch(4, 3)
    repeated = [0, 0, 0, 0, 0, 0] + ids[6:]  # prompt 0 then prompt 0 again (its MOS row kept per response)
    mos = np.asarray(mos)
    mos[3:6] = mos[0]
    apart = score_batch(PRESETS["qthink"], responses, mos, [0, 0, 0, 9, 9, 9] + ids[6:])
    together = score_batch(PRESETS["qthink"], responses, mos, repeated, group_size=3)
    for name in apart.components:
        assert np.array_equal(together.components[name], apart.components[name]), name
