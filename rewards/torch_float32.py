"""float32 reductions in the exact order torch's CPU kernels use.

The official reward code (VisualQuality-R1, VQAThinker, PreResQ-R1) reduces small float32 tensors with
`torch.mean` / `torch.var` / `torch.std`. Summing the same float32 values in another order changes the
last bit, and the Thurstone fidelity divides by a group's spread, so one ulp of a mean can move a reward
by more than the 1e-6 the presets are held to. These functions replay torch's order:

- `sum` (aten/native/cpu/SumKernel.cpp, float accumulators): rows shorter than one 8-lane vector are
  summed by `row_sum` with 4 interleaved accumulators; longer rows are summed as 8-lane vectors (again
  4 interleaved vector accumulators), then the scalar tail, then the 8 lanes one by one. Exact for
  rows shorter than 512 (longer rows switch on torch's multi-level cascade; no preset has such groups).
- `mean` = that sum divided by n in float32.
- `var`/`std` of a whole tensor (std_var_all_cpu): deviations from the float32 mean summed in double,
  divided by n - correction, then rounded to float32.
Checked bit-for-bit against torch 2.13 (CPU) for every row length 1..40 and 64..511.
"""

import numpy as np

_LANES = 8  # at::Vectorized<float>::size() in the sum kernel
_ILP = 4  # interleaved accumulators in row_sum


def _interleaved_sum(blocks: list[np.ndarray]) -> np.ndarray:
    acc = [np.zeros_like(blocks[0]) for _ in range(_ILP)]
    n_full = len(blocks) // _ILP
    for row in range(n_full):
        for k in range(_ILP):
            acc[k] = acc[k] + blocks[row * _ILP + k]
    for block in blocks[n_full * _ILP :]:
        acc[0] = acc[0] + block
    for k in range(1, _ILP):
        acc[0] = acc[0] + acc[k]
    return acc[0]


def torch_sum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis in float32, in torch's CPU order."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[-1]
    total = np.zeros(x.shape[:-1], dtype=np.float32)
    if n == 0:
        return total
    if n < _LANES:
        return _interleaved_sum([x[..., i] for i in range(n)])
    n_vec = n // _LANES
    lanes = _interleaved_sum([x[..., v * _LANES : (v + 1) * _LANES] for v in range(n_vec)])
    for i in range(n_vec * _LANES, n):
        total = total + x[..., i]
    for k in range(_LANES):
        total = total + lanes[..., k]
    return total


def torch_mean(x: np.ndarray) -> np.ndarray:
    """`torch.mean` over the last axis of a float32 tensor."""
    x = np.asarray(x, dtype=np.float32)
    return torch_sum(x) / np.float32(x.shape[-1])


def _double_variance(x: np.ndarray, correction: int) -> np.ndarray:
    """Squared deviations from the float32 mean, summed in double, over n - correction.

    A group of one with correction 1 is 0/0 (NaN) in torch; here it is 0, so a G=1 batch stays finite.
    """
    x = np.asarray(x, dtype=np.float32)
    deviation = x.astype(np.float64) - torch_mean(x).astype(np.float64)[..., None]
    return np.sum(deviation * deviation, axis=-1) / max(x.shape[-1] - correction, 1)


def torch_var(x: np.ndarray, correction: int) -> np.ndarray:
    """`torch.var(x, correction=...)` of a whole float32 tensor, per row of the last axis.

    Over float32's range the result is inf, as in torch (predictions are bounded, so never NaN).
    """
    with np.errstate(over="ignore"):
        return _double_variance(x, correction).astype(np.float32)


def torch_std(x: np.ndarray, correction: int) -> np.ndarray:
    """`torch.std(x, correction=...)`: the root is taken in double, then rounded to float32."""
    with np.errstate(over="ignore"):
        return np.sqrt(_double_variance(x, correction)).astype(np.float32)
