"""A small GRPO batch for learner tests: random media through the real chat template and processor, so
prompt ids carry the expanded image/video pads exactly as vLLM reports them."""

import numpy as np

from rollout.records import RolloutRequest, RolloutSample


def prompt_ids(proc, request: RolloutRequest) -> list[int]:
    """The expanded prompt ids of a request, as the engine reports them (the processor's own expansion)."""
    from rollout.engine import vllm_input

    text = vllm_input(request, proc)["prompt"]
    if request.media_type == "video":
        return proc(text=[text], videos=[request.frames], do_sample_frames=False,
                    return_tensors="pt")["input_ids"][0].tolist()
    images = [request.image] if request.media_type == "image" else list(request.frames)
    return proc(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist()


def _request(prompt_id: str, media_type: str, rng) -> RolloutRequest:
    if media_type == "image":
        return RolloutRequest(prompt_id, "image", image=rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
    frames = rng.integers(0, 255, (4 if media_type == "video" else 2, 112, 112, 3), dtype=np.uint8)
    return RolloutRequest(prompt_id, media_type, frames=frames)


def grpo_batch(model_dir, groups=2, g=3, seed=0, token_range=(20, 200), length_range=(3, 9), rollout_logprob=None,
               media_types=("image",)):
    """(processor, sequences, media): `groups` prompts (media types in turn from `media_types`: image, images,
    video) x `g` random responses with random advantages; `rollout_logprob` set: every response token
    carries that engine log-prob."""
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(model_dir)
    rng = np.random.default_rng(seed)
    media, seqs = {}, []
    for k in range(groups):
        media[f"p{k}"] = request = _request(f"p{k}", media_types[k % len(media_types)], rng)
        prompt = prompt_ids(proc, request)
        for _ in range(g):
            response = rng.integers(*token_range, size=int(rng.integers(*length_range))).tolist()
            logprobs = [rollout_logprob] * len(response) if rollout_logprob is not None else None
            seqs.append(RolloutSample(f"p{k}", prompt, response, logprobs, advantage=float(rng.normal())))
    return proc, seqs, media
