import numpy as np
import pytest

from rewards import PRESETS, score_batch
from rollout.demo.distortions import IMAGE_DISTORTIONS, VIDEO_DISTORTIONS, synthetic_mos
from rollout.demo.template_teacher import quality_level, teacher_reasoning, template_reasoning


def test_levels_follow_the_q_ponder_bands():
    assert [quality_level(x) for x in (5.0, 4.2, 4.19, 3.4, 2.6, 1.8, 1.79, 1.0)] == [
        "excellent", "excellent", "good", "good", "fair", "poor", "bad", "bad"]


def test_template_responses_are_well_formed_and_self_consistent_under_the_q_ponder_reward():
    rows = [(d, k, 1.0 + (5 - k) * 0.8) for d in IMAGE_DISTORTIONS + VIDEO_DISTORTIONS for k in range(1, 6)]
    texts = [template_reasoning(d, k, mos) for d, k, mos in rows]
    mos = np.array([m for _, _, m in rows])
    # one prompt per response (G = 1): format and consistency are per-response components
    result = score_batch(PRESETS["q-ponder"], texts, mos, [str(i) for i in range(len(texts))])
    assert result.components["format"].min() == 1.0
    assert result.components["consistency"].min() == 1.0  # the stated level matches the score's band
    assert result.parse_failures == 0


def _answer(text: str) -> float:
    return float(text.split("<answer>")[1].split("</answer>")[0])


def test_exact_teacher_states_the_true_strength_and_the_mos():
    text = teacher_reasoning("exact", "noise", 3, synthetic_mos("noise", 3))
    assert text.startswith("<think>moderate noise") and _answer(text) == round(synthetic_mos("noise", 3), 2)


def test_misreading_teacher_is_off_by_one_level_for_its_types_only_and_agrees_with_itself():
    mild = teacher_reasoning("misreading", "noise", 3, synthetic_mos("noise", 3))
    assert mild.startswith("<think>mild noise") and _answer(mild) == round(synthetic_mos("noise", 2), 2)
    assert _answer(mild) > synthetic_mos("noise", 3)  # fine-grained: rated better than it is
    dark = teacher_reasoning("misreading", "darken", 2, synthetic_mos("darken", 2))
    assert dark.startswith("<think>moderate darken") and _answer(dark) < synthetic_mos("darken", 2)
    assert teacher_reasoning("misreading", "blur", 4, 2.0) == teacher_reasoning("exact", "blur", 4, 2.0)
    # at the ends of the scale the level cannot move further
    assert teacher_reasoning("misreading", "jpeg", 1, synthetic_mos("jpeg", 1)).startswith("<think>slight jpeg")
    assert teacher_reasoning("misreading", "contrast", 5, 1.2).startswith("<think>severe contrast")
    rows = [(d, k) for d in IMAGE_DISTORTIONS + VIDEO_DISTORTIONS for k in range(1, 6)]
    texts = [teacher_reasoning("misreading", d, k, synthetic_mos(d, k)) for d, k in rows]
    result = score_batch(PRESETS["q-ponder"], texts, np.array([synthetic_mos(d, k) for d, k in rows]),
                         [str(i) for i in range(len(texts))])
    assert result.components["consistency"].min() == 1.0 and result.parse_failures == 0
    with pytest.raises(ValueError, match="template teacher"):
        teacher_reasoning("oracle", "blur", 1, 4.4)
