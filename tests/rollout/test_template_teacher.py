import numpy as np

from rewards import score_batch
from rollout.distortions import IMAGE_DISTORTIONS, VIDEO_DISTORTIONS
from rollout.template_teacher import quality_level, template_reasoning


def test_levels_follow_the_q_ponder_bands():
    assert [quality_level(x) for x in (5.0, 4.2, 4.19, 3.4, 2.6, 1.8, 1.79, 1.0)] == [
        "excellent", "excellent", "good", "good", "fair", "poor", "bad", "bad"]


def test_template_responses_are_well_formed_and_self_consistent_under_the_q_ponder_reward():
    rows = [(d, k, 1.0 + (5 - k) * 0.8) for d in IMAGE_DISTORTIONS + VIDEO_DISTORTIONS for k in range(1, 6)]
    texts = [template_reasoning(d, k, mos) for d, k, mos in rows]
    mos = np.array([m for _, _, m in rows])
    # one prompt per response (G = 1): format and consistency are per-response components
    result = score_batch("q-ponder", texts, mos, [str(i) for i in range(len(texts))])
    assert result.components["format"].min() == 1.0
    assert result.components["consistency"].min() == 1.0  # the stated level matches the score's band
    assert result.parse_failures == 0
