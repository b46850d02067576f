"""Hypothesis fuzzing: any response text -> no exception, every value finite and in its component's range."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import PRESETS, score_batch

ODD_NUMBERS = [
    "nan",
    "inf",
    "-inf",
    "1e309",
    "9" * 10000,
    "-" + "9" * 400 + ".5",
    ".5",
    "-2",
    "1080p",
    "3.47.5",
    "0",
    "-0.0",
    "5.0000001",
    "1e-7",
    "+.25",
    "1" + "0" * 31,
]
TAGS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    '{"rating": ',
    "}",
    "\n",
    " ",
    "not good",
    "excellent",
]
fragments = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.sampled_from(TAGS),
    st.text(max_size=20),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
responses = st.one_of(
    st.text(max_size=60),
    st.lists(fragments, max_size=12).map("".join),
    st.tuples(st.text(max_size=10), fragments, fragments).map(
        lambda t: f"<think>{t[0]}</think><answer>{t[1]}\n{t[2]}</answer>"
    ),
)


@st.composite
def batches(draw):
    n_prompts, size = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    mos = draw(st.lists(st.floats(1, 5), min_size=n_prompts, max_size=n_prompts))
    perturbed = draw(st.booleans())
    n_rows = n_prompts * size * (2 if perturbed else 1)
    texts = draw(st.lists(responses, min_size=n_rows, max_size=n_rows))
    ids = [p for p in range(n_prompts) for _ in range(size)]
    variants = ["original"] * len(ids) + (["perturbed"] * len(ids) if perturbed else [])
    ids = ids * (2 if perturbed else 1)
    return texts, [mos[p] for p in ids], ids, variants


@pytest.mark.parametrize("preset", list(PRESETS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_any_response_gives_finite_in_range_rewards(preset, batch):
    texts, mos, ids, variants = batch
    result = score_batch(PRESETS[preset], texts, mos, ids, variants)
    for component in PRESETS[preset].components:
        values = result.components[component.name]
        low, high = component.bounds
        assert values.shape == (len(texts),) and np.all(np.isfinite(values)), component.name
        assert np.all((values >= low) & (values <= high)), (component.name, values)
    assert np.all(np.isfinite(result.total))
    assert 0 <= result.parse_failures <= len(texts)
