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


def test_preresq_templates_accept_exactly_what_the_official_patterns_accept():
    """The official patterns (PreResQ-R1's code) backtrack without bound; ours must match the same strings."""
    import random
    import re

    official = {
        PRERESQ_IQA_TEMPLATE: re.compile(
            r"<think>.*?</think>\s*<answer>(?:\s*\d+\.?\d*\s*\n){4}\s*\d+\.?\d*\s*</answer>", re.DOTALL),
        PRERESQ_VQA_TEMPLATE: re.compile(
            r"<think>.*?</think>\s*<answer>(?:\s*\d+\.?\d*\s*\n){2}\s*</answer>", re.DOTALL),
    }
    rng = random.Random(0)
    pieces = ["1", "23", ".", " ", "\n", "\t", "\u2003", "\u0663", "</answer>", "</think>", "<answer>", "x"]
    pieces += ["3.5\n", "2 \n", "4.\n", "\n1\n"] * 3  # whole number lines, so both templates also accept
    matched = {ours: 0 for ours in official}
    for _ in range(30000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        text = f"<think>a</think>{rng.choice(['', ' ', chr(10)])}<answer>{body}{rng.choice(['', '</answer>'])}"
        for ours, theirs in official.items():
            assert bool(ours.fullmatch(text)) == bool(theirs.fullmatch(text)), repr(text)
            matched[ours] += bool(ours.fullmatch(text))
    assert all(n > 0 for n in matched.values())  # both templates were exercised on accepted strings too


def test_a_degenerate_run_of_digits_is_judged_not_backtracked_on():
    """Found by the fuzz test: a response of 20,000 digits kept the official VQA pattern busy for minutes (a
    reward worker hung on one response). Under pytest's timeout this completing is the assertion."""
    digits = "9" * 10_000
    responses = [f"<think>x</think><answer>{digits}\n{digits}</answer>",
                 f"<think>x</think><answer>{digits}\n{digits}\n</answer>"]
    assert template_format(responses, PRERESQ_VQA_TEMPLATE).tolist() == [0.0, 1.0]
    five = "\n".join([digits] * 5)
    assert template_format([f"<think>x</think><answer>{five}x</answer>", f"<think>x</think><answer>{five}</answer>"],
                           PRERESQ_IQA_TEMPLATE).tolist() == [0.0, 1.0]
