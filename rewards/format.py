"""Format rewards: 1.0 when the WHOLE response matches the paper's template, else 0.0.

All use `re.fullmatch` with DOTALL, as the official code does, so one character before `<think>` or after
`</answer>` (even a trailing newline) fails.
"""

import re

import numpy as np

# R1 (VQAThinker, VisualQuality-R1, Q-Ponder, qthink): a missing </think> fails; two answer blocks still
# pass because the lazy `.*?` may span both.
R1_TEMPLATE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
# PreResQ-R1's official patterns, `(?:\s*\d+\.?\d*\s*\n){N}`, can split a digit run or a whitespace run in
# many ways, and a fuzzed response kept a reward worker backtracking for minutes. These accept the same
# strings (tests/rewards/test_format.py) with one way to split each: `\d+(?:\.\d*)?` is `\d+\.?\d*`, and
# `[^\S\n]*\n` + the next `\s*` is `\s*\n\s*`; possessive quantifiers never give back what they took.
_NUMBER_LINE = r"\s*+\d++(?:\.\d*+)?+[^\S\n]*+\n"
# PreResQ-R1 IQA: exactly 5 unsigned numbers in the answer, the first 4 each followed by a newline.
PRERESQ_IQA_TEMPLATE = re.compile(
    rf"<think>.*?</think>\s*+<answer>(?:{_NUMBER_LINE}){{4}}\s*+\d++(?:\.\d*+)?+\s*+</answer>", re.DOTALL
)
# PreResQ-R1 VQA: exactly 2 numbers, BOTH followed by a newline (`<answer>3.1\n3.2</answer>` scores 0).
PRERESQ_VQA_TEMPLATE = re.compile(rf"<think>.*?</think>\s*+<answer>(?:{_NUMBER_LINE}){{2}}\s*+</answer>", re.DOTALL)


def template_format(responses: list[str], template: re.Pattern) -> np.ndarray:
    return np.array([1.0 if template.fullmatch(r) else 0.0 for r in responses], dtype=np.float64)
