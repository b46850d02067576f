"""Shapes that move between roles: manifest samples -> rollout requests (with VQAThinker's perturbed video
copies) -> learner sequences. No math here; the perturbations themselves live in rollout/perturbations."""

from __future__ import annotations

import numpy as np

from cluster.config import QThinkConfig
from rewards import Preset
from rollout.manifest import Sample
from rollout.multiframe import multiframe_view
from rollout.records import RolloutRequest


def media_request(prompt_id: str, media_type: str, media, preset: Preset, cfg: QThinkConfig,
                  seed: int | None = None) -> RolloutRequest:
    """The engine request for one decoded image (PIL) or video (VideoClip), asking the question the reward
    preset's parser expects; `data.video_view: multiframe` shows a video as PreResQ-R1 does (one tiled
    composite + local frames). Training, evaluation and serving all build requests here."""
    style = cfg.data.prompt_style
    common = dict(question=preset.question(media_type, style), seed=seed,
                  system_prompt=style != "short")
    if media_type == "image":
        return RolloutRequest(prompt_id, "image", image=np.asarray(media.convert("RGB")), **common)
    if cfg.data.video_view == "multiframe":
        view = multiframe_view(media.frames, tile_max_side=max(media.frames.shape[1:3]) // 2)
        return RolloutRequest(prompt_id, "images", frames=[view.composite, *view.local_frames], **common)
    return RolloutRequest(prompt_id, "video", frames=media.frames, video_meta=dict(media.metadata), **common)


def request_for(sample: Sample, seed: int | None, preset: Preset, cfg: QThinkConfig) -> RolloutRequest:
    return media_request(sample.row.id, sample.row.media_type, sample.media, preset, cfg, seed)


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
