"""VQAThinker's six temporal perturbations, as pure seeded functions on already-decoded frames.

VQAThinker (arXiv 2508.06051; code clh124/VQAThinker@ee47a40, `apply_temporal_perturbation` in
train/.../vlm_modules/internvl_module.py) rolls every video out a second time on a temporally perturbed
copy and rewards the original rollouts that score better (docs/rewards.md, preset `vqathinker`, "temporal").
One perturbation is drawn per video; `TemporalPerturbation` lists them as the official code computes them.

Every perturbation is expressed as an index map: output frame i is source frame `indices[i]`, or black
where `indices[i] == -1`. The map is what a test or a log can read; `perturb` applies it with one gather.
Randomness comes from a numpy Generator (seeded), not Python's `random` as in the official code, so the
draws differ from theirs while the distributions are the same.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from rollout.records import RolloutRequest

LOCAL_SHUFFLE_WINDOW = 4
BLACK = -1


class TemporalPerturbation(str, enum.Enum):
    """The six perturbations; T frames in, T frames out.

    - SHUFFLE: a random permutation of all frames.
    - LOCAL_SHUFFLE: a random permutation inside each consecutive window of 4 (the last may be shorter).
    - REVERSE: the frames backwards.
    - JITTER: output frame i is source frame clamp(i + d, 0, T-1), d drawn from {-1, 0, +1} per frame.
    - DUPLICATE: one random frame is inserted k times (k in 1..min(3, T-1)) at a random position, then k
      frames other than the inserted copies are dropped at random, so T is kept. A dropped frame may be the
      duplicated frame's own original (then, with k = 1, the frame is merely moved: an official quirk kept).
    - BLACKOUT: 1..min(3, T) distinct random frames are set to black (their order is untouched). The
      official code calls this mode "random_drop".
    """

    SHUFFLE = "shuffle"
    LOCAL_SHUFFLE = "local_shuffle"
    REVERSE = "reverse"
    JITTER = "jitter"
    DUPLICATE = "duplicate"
    BLACKOUT = "blackout"


def _rng(rng_or_seed: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def draw_perturbation(rng_or_seed: np.random.Generator | int) -> TemporalPerturbation:
    """One of the six, uniformly, as the official trainer draws one per video."""
    modes = list(TemporalPerturbation)
    return modes[int(_rng(rng_or_seed).integers(len(modes)))]


def perturbation_indices(num_frames: int, mode: TemporalPerturbation | str,
                         rng_or_seed: np.random.Generator | int) -> np.ndarray:
    """The index map [T] of a perturbation: source frame per output frame, `BLACK` (-1) for black."""
    mode = TemporalPerturbation(mode)
    rng = _rng(rng_or_seed)
    t = num_frames
    identity = np.arange(t, dtype=np.int64)
    if t == 0:
        return identity
    if mode is TemporalPerturbation.SHUFFLE:
        return rng.permutation(t).astype(np.int64)
    if mode is TemporalPerturbation.LOCAL_SHUFFLE:
        return np.concatenate([start + rng.permutation(min(LOCAL_SHUFFLE_WINDOW, t - start))
                               for start in range(0, t, LOCAL_SHUFFLE_WINDOW)]).astype(np.int64)
    if mode is TemporalPerturbation.REVERSE:
        return identity[::-1].copy()
    if mode is TemporalPerturbation.JITTER:
        return np.clip(identity + rng.integers(-1, 2, size=t), 0, t - 1)
    if mode is TemporalPerturbation.DUPLICATE:
        return _duplicate_indices(t, rng)
    blackout = identity.copy()
    count = int(rng.integers(1, min(3, t) + 1))
    blackout[rng.choice(t, size=count, replace=False)] = BLACK
    return blackout


def _duplicate_indices(t: int, rng: np.random.Generator) -> np.ndarray:
    """Insert k copies of one frame at a random position, then drop k of the other frames (T kept)."""
    if t < 2:
        return np.arange(t, dtype=np.int64)
    source = int(rng.integers(t))
    repeats = int(rng.integers(1, min(3, t - 1) + 1))
    position = int(rng.integers(t + 1))
    extended = np.concatenate([np.arange(position), np.full(repeats, source),
                               np.arange(position, t)]).astype(np.int64)
    candidates = np.concatenate([np.arange(position), np.arange(position + repeats, t + repeats)])
    keep = np.ones(t + repeats, dtype=bool)
    keep[rng.choice(candidates, size=repeats, replace=False)] = False
    return extended[keep]


def apply_indices(frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Gather frames [T, ...] by an index map; `BLACK` entries become zero frames."""
    out = frames[np.maximum(indices, 0)]
    out[indices == BLACK] = 0
    return out


def perturb(frames: np.ndarray, mode: TemporalPerturbation | str,
            rng_or_seed: np.random.Generator | int) -> tuple[np.ndarray, np.ndarray]:
    """A perturbed copy of decoded frames [T, H, W, C] (same shape) and its index map.

    The same seed gives the same frames; the input is never modified and never re-decoded.
    """
    indices = perturbation_indices(len(frames), mode, rng_or_seed)
    return apply_indices(frames, indices), indices


def perturbed_copy(request: RolloutRequest, seed: int) -> RolloutRequest:
    """The same video request with one temporal perturbation drawn for it (VQAThinker's temporal reward),
    made by the rollout worker that fetched the original (actors/media.py)."""
    rng = np.random.default_rng(seed)
    frames, _ = perturb(request.frames, draw_perturbation(rng), rng)
    return dataclasses.replace(request, frames=frames, variant="perturbed")
