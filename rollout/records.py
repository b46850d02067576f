"""The two records a sample travels in, from the data reader to the learner, with one set of field names.

`RolloutRequest` is a prompt and its media: what an engine samples from, and what a learner rank rebuilds
the pixel tensors from. `RolloutSample` is one response: the prompt ids as vLLM expanded them, the sampled
token ids and their log-probs, and the advantage the learner weights it by (an SFT target is a sample
with no log-probs). No torch here: both cross Ray between the driver, rollout workers and learner ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RolloutRequest:
    """One prompt to sample G responses for. `variant` marks VQAThinker's perturbed copies."""

    prompt_id: str
    media_type: str  # image | video | images (several pictures: PreResQ-R1's multi-frame view)
    image: np.ndarray | None = None  # [H, W, 3] uint8
    frames: np.ndarray | list | None = None  # video [T, H, W, 3] uint8, or a list of [H, W, 3] pictures (images)
    video_meta: dict | None = None
    question: str | None = None
    variant: str = "original"
    seed: int | None = None
    system_prompt: bool = True


@dataclass
class RequestRef:
    """A `RolloutRequest` left in Ray's object store where it was built (media decoded off the driver): the
    driver keeps what it needs to route and account for it, the rollout workers and learner ranks fetch the
    request itself. `ref` is the object reference (opaque here: no Ray import in rollout/). A perturbed
    copy refers to its original's object and is made where it is fetched, from `perturb_seed`."""

    prompt_id: str
    media_type: str
    ref: object
    seed: int | None = None  # the request's sampling seed
    variant: str = "original"
    perturb_seed: int | None = None


@dataclass
class RolloutSample:
    """One response to the request of the same `prompt_id`, and everything the rewards and learner need."""

    prompt_id: str
    prompt_token_ids: list[int]
    token_ids: list[int]
    logprobs: list[float] | None = None  # each token's log-prob under the policy that sampled it
    text: str = ""
    finish_reason: str = ""
    policy_version: int = 0
    variant: str = "original"
    index: int = 0  # position inside the group of G
    advantage: float = 0.0  # set by the driver when the sample becomes training data
