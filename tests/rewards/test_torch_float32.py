"""The float32 reductions replay torch's CPU summation order (the official rewards reduce with torch)."""

import numpy as np
import pytest

from rewards.torch_float32 import torch_mean, torch_std, torch_sum, torch_var

f32 = np.float32


def test_five_values_sum_as_torch_pairs_them():
    # torch, n = 5: ((((a0 + a4) + a1) + a2) + a3). With a0 = 1e8 and a4 = -1e8 the big values cancel first
    # and the three ones survive: 3. Left to right, each +1 is lost against 1e8 (float32 ulp there is 8): 0.
    values = np.array([1e8, 1, 1, 1, -1e8], dtype=f32)
    assert torch_sum(values) == f32(3)
    assert f32(f32(f32(f32(values[0] + values[1]) + values[2]) + values[3]) + values[4]) == f32(0)


def test_eight_values_sum_left_to_right():
    # n = 8 fills one 8-lane vector, whose lanes are added one by one:
    # 1e8 + 1 = 1e8 (the 1 is lost), - 1e8 = 0, then the five remaining ones: 5
    values = np.array([1e8, 1, -1e8, 1, 1, 1, 1, 1], dtype=f32)
    assert torch_sum(values) == f32(5)


def test_mean_var_std_small_group():
    values = np.array([1, 2, 3, 4], dtype=f32)
    assert torch_mean(values) == f32(2.5)
    # deviations -1.5 -0.5 0.5 1.5: squares 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert torch_var(values, correction=1) == f32(5 / 3)
    assert torch_std(values, correction=0) == f32(np.sqrt(5 / 4))


def test_group_of_one_has_zero_unbiased_variance():
    assert torch_var(np.array([[3.0]], dtype=f32), correction=1)[0] == 0.0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 24, 31, 64, 100, 511])
def test_bit_exact_against_torch(n):
    torch = pytest.importorskip("torch")
    rows = np.random.default_rng(n).uniform(1, 5, (200, n)).astype(f32)
    assert np.array_equal(torch_sum(rows), torch.tensor(rows).sum(dim=1).numpy())
    assert np.array_equal(
        torch_mean(rows), np.array([torch.tensor(r).mean().item() for r in rows], dtype=f32)
    )
    if n > 1:
        assert np.array_equal(
            torch_var(rows, 1), np.array([torch.var(torch.tensor(r)).item() for r in rows], dtype=f32)
        )
    assert np.array_equal(
        torch_std(rows, 0),
        np.array([torch.std(torch.tensor(r), unbiased=False).item() for r in rows], dtype=f32),
    )
