"""Format templates are full matches: nothing before <think>, nothing after </answer>."""

import pytest

from rewards.format import PRERESQ_IQA_TEMPLATE, PRERESQ_VQA_TEMPLATE, R1_TEMPLATE, template_format


@pytest.mark.parametrize(
    "response, expected",
    [
        ("<think>a\nb</think><answer>3.5</answer>", 1.0),
        ("<think>a</think> \n\t <answer>3.5</answer>", 1.0),  # any whitespace between the blocks
        ("<think>a</think><answer>3.5</answer>\n", 0.0),  # one trailing newline fails
        (" <think>a</think><answer>3.5</answer>", 0.0),
        ("<think>a<answer>3.5</answer>", 0.0),  # missing </think>
        ("<think>a</think><answer>1</answer> x <answer>2</answer>", 1.0),  # lazy .*? spans both blocks
        ("", 0.0),
    ],
)
def test_r1_format(response, expected):
    assert template_format([response], R1_TEMPLATE)[0] == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("3.1\n3.2\n3.3\n3.4\n3.5", 1.0),
        (" 3\n 4.\n5.25 \n1\n2 ", 1.0),
        ("3.1\n3.2\n3.3\n3.4\n3.5\n3.6", 0.0),  # six numbers
        ("3.1, 3.2, 3.3, 3.4, 3.5", 0.0),  # commas
        ("saturation: 3.1\n3.2\n3.3\n3.4\n3.5", 0.0),  # labels
        ("-3.1\n3.2\n3.3\n3.4\n3.5", 0.0),  # unsigned only
    ],
)
def test_preresq_iqa_format(answer, expected):
    assert (
        template_format([f"<think>t</think><answer>{answer}</answer>"], PRERESQ_IQA_TEMPLATE)[0] == expected
    )


def test_preresq_vqa_format_needs_a_newline_after_both_numbers():
    assert template_format(["<think>t</think><answer>3.1\n3.2\n</answer>"], PRERESQ_VQA_TEMPLATE)[0] == 1.0
    assert template_format(["<think>t</think><answer>3.1\n3.2</answer>"], PRERESQ_VQA_TEMPLATE)[0] == 0.0
