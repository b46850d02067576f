"""The vLLM engine wrapper: G sampled responses per image or video, with what the learner needs.

Two traps of Qwen-VL + vLLM shape this file (docs/design.md, "Environment notes"; verl #3469, R1-V #91):
1. vLLM can sample `<|image_pad|>`/`<|video_pad|>`; the learner's forward then fails ("Image features and
   image tokens do not match"). Those ids are banned by logit bias. The engine reports the log-probs of
   the distribution it samples from (`processed_logprobs`: bias and temperature applied), and the learner
   computes that same distribution (learners/logprobs.py), so importance ratios stay exact.
2. Prompt ids that already hold expanded pads are expanded AGAIN by vLLM. The engine is given the prompt
   TEXT plus the media, and returns the prompt ids vLLM actually used; the learner trains on those.
Weights arrive through vLLM's weight-transfer protocol (rollout/vllm_worker.py) and the multimodal caches
are reset after each update: a stale encoder cache kills the engine on the next image ("Encoder cache miss").
"""

from __future__ import annotations

import os

from rollout.config import RolloutConfig
from rollout.prompts import quality_messages
from rollout.records import RolloutRequest, RolloutSample

BANNED_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")
BANNED_LOGIT_BIAS = -100.0


def vllm_input(request: RolloutRequest, processor) -> dict:
    """The prompt text (not ids, see trap 2) and media in the form vLLM's Qwen2.5-VL processor expects."""
    from PIL import Image

    if request.media_type == "image":
        messages = quality_messages("image", request.question, system=request.system_prompt)
        media = {"image": Image.fromarray(request.image)}
    elif request.media_type == "images":
        messages = quality_messages("image", request.question, len(request.frames), request.system_prompt)
        media = {"image": [Image.fromarray(f) for f in request.frames]}
    elif request.media_type == "video":
        messages = quality_messages("video", request.question, system=request.system_prompt)
        media = {"video": (request.frames, request.video_meta or default_video_meta(len(request.frames)))}
    else:
        raise ValueError(f"unknown media_type {request.media_type!r}")
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return {"prompt": text, "multi_modal_data": media}


def default_video_meta(num_frames: int, fps: float = 2.0) -> dict:
    """Metadata vLLM requires for pre-decoded frames (it must not re-sample them)."""
    return {"fps": fps, "duration": num_frames / fps, "total_num_frames": num_frames,
            "frames_indices": list(range(num_frames)), "video_backend": "opencv", "do_sample_frames": False}


def engine_args(model_dir: str, config: RolloutConfig, dtype: str = "float32", max_media: int = 4) -> dict:
    """vLLM engine settings, shared by the offline `LLM` here and the Serve app's `AsyncLLM`, so a served
    model runs exactly as it did in rollout and evaluation."""
    import torch

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(config.kv_cache_gib))))
    # On CPU, a prompt split by chunked prefill makes vLLM rewind the request's seeded generator, which
    # CPU generators cannot do ("CPU Generator does not use offset": the engine dies). Prompts are
    # scheduled whole instead; per-request seeds keep a resumed run sampling the same responses.
    on_gpu = config.gpus_per_worker > 0 or torch.cuda.is_available()  # (a TP > 1 rollout worker sees no GPU)
    cpu_only = {} if on_gpu else dict(
        enable_chunked_prefill=False, max_num_batched_tokens=max(config.max_model_len, 8192))
    return dict(
        model=str(model_dir), dtype=dtype, seed=config.seed, enforce_eager=config.enforce_eager,
        max_model_len=config.max_model_len, tensor_parallel_size=config.tensor_parallel_size,
        gpu_memory_utilization=config.gpu_memory_utilization,
        limit_mm_per_prompt={"image": max_media, "video": 1}, logprobs_mode="processed_logprobs",
        **cpu_only,
    )


def banned_token_ids(tokenizer) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in BANNED_TOKENS]


def sampling_params(config: RolloutConfig, banned_ids: list[int], n: int, seed: int | None, **overrides):
    """The config's sampling with per-call overrides (temperature, top_p, max_tokens); pads banned (trap 1)."""
    from vllm import SamplingParams

    c = config
    return SamplingParams(
        n=n, temperature=overrides.get("temperature", c.temperature), top_p=overrides.get("top_p", c.top_p),
        max_tokens=overrides.get("max_tokens", c.max_tokens), seed=seed, logprobs=0,
        logit_bias={i: BANNED_LOGIT_BIAS for i in banned_ids},
    )


class RolloutEngine:
    def __init__(self, model_dir: str, config: RolloutConfig, dtype: str = "float32", max_media: int = 4):
        # weights arrive through qthink's engine ("gloo": its group is NCCL on GPUs); a served model needs none
        args = {**engine_args(model_dir, config, dtype, max_media), "weight_transfer_config": {"backend": "gloo"}}
        if config.tensor_parallel_size > 1 and config.gpus_per_worker:
            # one Ray worker per rank, in the bundles of the placement group this engine runs in (cluster/placement.py)
            args["distributed_executor_backend"] = "ray"
        from transformers import AutoProcessor
        from vllm import LLM

        from rollout.vllm_worker import register

        register()  # vLLM's plugin hook does this too, where qthink is installed (an engine in this process)
        self.config = config
        self.model_dir = str(model_dir)
        self.processor = AutoProcessor.from_pretrained(self.model_dir)
        self.banned_ids = banned_token_ids(self.processor.tokenizer)
        self.llm = LLM(**args)
        self.version = 0

    def generate(self, requests: list[RolloutRequest], n: int | None = None, **overrides) -> list[list[RolloutSample]]:
        """One engine call for every request (originals and perturbed variants batch together)."""
        if not requests:
            return []
        n = n or self.config.n
        inputs = [vllm_input(r, self.processor) for r in requests]
        params = [sampling_params(self.config, self.banned_ids, n, r.seed, **overrides) for r in requests]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        groups = []
        for request, out in zip(requests, outputs):
            group = []
            for j, c in enumerate(out.outputs):
                ids = list(c.token_ids)
                lps = [float(c.logprobs[k][t].logprob) for k, t in enumerate(ids)] if c.logprobs else []
                group.append(RolloutSample(
                    prompt_id=request.prompt_id, variant=request.variant, index=j,
                    prompt_token_ids=list(out.prompt_token_ids), token_ids=ids, logprobs=lps, text=c.text,
                    finish_reason=str(c.finish_reason), policy_version=self.version,
                ))
            groups.append(group)
        return groups

    def shutdown(self) -> None:
        """Stops the engine core now. Left to the interpreter's exit, vLLM's finalizers log into streams
        that are already closed (pytest's capture), which prints a "Logging error" traceback per engine."""
        self.llm.llm_engine.engine_core.shutdown()

    def init_weight_transfer(self, init_info: dict, timeout_s: float | None = None) -> None:
        """Join the learner's weight-transfer group (rollout/vllm_worker.py); blocks until every member has."""
        self.llm.collective_rpc("init_weight_transfer_engine", kwargs={"init_info": init_info}, timeout=timeout_s)

    def close_weight_transfer(self) -> None:
        self.llm.collective_rpc("shutdown_weight_transfer_engine")

    def receive_weights(self, update_info: dict, version: int, timeout_s: float | None = None) -> None:
        """One sync through vLLM's weight-transfer protocol, while the learner sends. The protocol does not
        reset the caches built by the old weights: that is done here."""
        for phase, kwargs in (("start_weight_update", {}), ("update_weights", {"update_info": update_info}),
                              ("finish_weight_update", {})):
            self.llm.collective_rpc(phase, kwargs=kwargs, timeout=timeout_s)
        self.llm.llm_engine.reset_encoder_cache()
        self.llm.reset_mm_cache()
        self.llm.reset_prefix_cache()
        self.version = version
