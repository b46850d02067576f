"""A small GRPO batch for learner tests: random images through the real chat template and processor,
so prompt ids carry the expanded image pads exactly as vLLM reports them."""

import numpy as np

from rollout.records import RolloutRequest, RolloutSample


def grpo_batch(model_dir, groups=2, g=3, seed=0, token_range=(20, 200), length_range=(3, 9), rollout_logprob=None):
    """(processor, sequences, media): `groups` images x `g` random responses with random advantages;
    `rollout_logprob` set: every response token carries that engine log-prob."""
    from transformers import AutoProcessor

    from rollout.engine import vllm_input

    proc = AutoProcessor.from_pretrained(model_dir)
    rng = np.random.default_rng(seed)
    media, seqs = {}, []
    for k in range(groups):
        image = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
        media[f"p{k}"] = request = RolloutRequest(f"p{k}", "image", image=image)
        text = vllm_input(request, proc)["prompt"]
        prompt = proc(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
        for _ in range(g):
            response = rng.integers(*token_range, size=int(rng.integers(*length_range))).tolist()
            logprobs = [rollout_logprob] * len(response) if rollout_logprob is not None else None
            seqs.append(RolloutSample(f"p{k}", prompt, response, logprobs, advantage=float(rng.normal())))
    return proc, seqs, media
