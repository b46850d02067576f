"""Shapes that move between roles: manifest samples -> rollout requests (with VQAThinker's perturbed video
copies) -> learner sequences. No math here; the perturbations themselves live in rollout/perturbations."""

from __future__ import annotations

import numpy as np

from learners.policy_trainer import MediaItem, TrainSequence
from rollout.engine import RolloutRequest, RolloutSample
from rollout.manifest import ManifestReader, Sample
from rollout.multiframe import multiframe_view
from rollout.perturbations import draw_perturbation, perturb
from rollout.prompts import question_for


def request_for(sample: Sample, seed: int | None = None, preset: str = "qthink",
                video_view: str = "frames") -> RolloutRequest:
    """The engine request for one manifest sample, asking the question the preset's parser expects;
    `video_view="multiframe"` shows a video as PreResQ-R1 does (one tiled composite + local frames)."""
    row, media = sample.row, sample.media
    question = question_for(preset, row.media_type)
    if row.media_type == "image":
        return RolloutRequest(row.id, "image", image=np.asarray(media.convert("RGB")), question=question, seed=seed)
    if video_view == "multiframe":
        view = multiframe_view(media.frames, tile_max_side=max(media.frames.shape[1:3]) // 2)
        return RolloutRequest(row.id, "images", frames=[view.composite, *view.local_frames], question=question,
                              seed=seed)
    return RolloutRequest(row.id, "video", frames=media.frames, video_meta=dict(media.metadata), question=question,
                          seed=seed)


def perturbed_copy(request: RolloutRequest, seed: int) -> RolloutRequest:
    """The same video with one temporal perturbation drawn for it (VQAThinker's temporal reward)."""
    rng = np.random.default_rng(seed)
    frames, _ = perturb(request.frames, draw_perturbation(rng), rng)
    return RolloutRequest(request.prompt_id, "video", frames=frames, video_meta=request.video_meta,
                          question=request.question, variant="perturbed", seed=request.seed)


def rollout_batch(samples: list[Sample], step: int, seed: int, temporal: bool, preset: str,
                  video_view: str = "frames") -> list[RolloutRequest]:
    """Originals first, then a perturbed copy of each video when the temporal reward is on; per-request
    sampling seeds derive from (seed, step, position) so a resumed run samples the same responses."""
    originals = [request_for(s, seed * 1_000_003 + step * 1009 + i, preset, video_view) for i, s in enumerate(samples)]
    perturbed = [perturbed_copy(r, seed * 7919 + step * 131 + i) for i, r in enumerate(originals)
                 if temporal and r.media_type == "video"]
    return originals + perturbed


def media_item(request: RolloutRequest) -> MediaItem:
    return MediaItem(request.media_type, image=request.image, frames=request.frames, video_meta=request.video_meta)


def train_sequences(samples: list[RolloutSample], advantages: np.ndarray) -> list[TrainSequence]:
    return [TrainSequence(s.prompt_id, s.prompt_token_ids, s.token_ids, float(a), s.logprobs)
            for s, a in zip(samples, advantages)]


def next_samples(reader: ManifestReader, stream, count: int) -> list[Sample]:
    """`count` usable samples from an endless reader stream (bad media are skipped and counted by it)."""
    out = []
    for sample in stream:
        out.append(sample)
        if len(out) == count:
            return out
    raise RuntimeError(f"{reader.manifest.path}: no usable media left (skipped: {dict(reader.skip_counts)})")


def prompt_token_ids(processor, request: RolloutRequest) -> list[int]:
    """The prompt ids exactly as vLLM expands them (the processor's own expansion of the prompt text; the
    engine test asserts the two agree), for SFT rows that never went through the engine."""
    from rollout.engine import vllm_input

    text = vllm_input(request, processor)["prompt"]
    if request.media_type == "video":
        out = processor(text=[text], videos=[request.frames], do_sample_frames=False, return_tensors="np")
    else:
        images = [request.image] if request.media_type == "image" else list(request.frames)
        out = processor(text=[text], images=images, return_tensors="np")
    return out["input_ids"][0].tolist()


def response_token_ids(tokenizer, text: str) -> list[int]:
    """An SFT target: the response text and the end-of-turn token the engine stops on."""
    return tokenizer(text + "<|im_end|>", add_special_tokens=False)["input_ids"]
