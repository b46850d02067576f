"""Build a Qwen2.5-VL with random weights and a locally trained tokenizer: no model hub exists here.

The result is a real `Qwen2_5_VLForConditionalGeneration` model dir (config, safetensors, tokenizer,
chat template, Qwen2-VL image and video processors) that transformers and vLLM load exactly like a
downloaded checkpoint, so every test and the demo run the same code path a 7B run does. Shapes are a
parameter: `tiny` (~0.5M params) for tests and the demo, `small` for probes, `3b` for GPU throughput runs
(Qwen2.5-VL-3B's published shapes, random weights). Same seed -> byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

from rollout.demo.template_teacher import STRENGTH, SYMPTOMS, template_reasoning
from rollout.prompts import (
    PRERESQ_ASPECTS,
    PRERESQ_IQA_QUESTION,
    PRERESQ_VQA_QUESTION,
    QUALITY_QUESTION,
    R1_SYSTEM_PROMPT,
)

BUILDER_VERSION = 2  # bump when the files a (shape, seed) produces change: cached models are rebuilt

# Qwen2.5's special tokens, in Qwen's order (ids follow the BPE vocab, so they differ from Qwen's own).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# Qwen2-VL's chat format: content lists with image/video placeholders expanded by the processor later.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SHAPES = {
    # text: hidden, layers, heads, kv_heads, intermediate, vocab floor; vision: depth, hidden, heads, inter.
    "tiny": dict(hidden=64, layers=2, heads=2, kv_heads=1, inter=128, vocab=2048, v_depth=2, v_hidden=64,
                 v_heads=4, v_inter=128, fullatt=[1], tie=True),
    "small": dict(hidden=256, layers=4, heads=8, kv_heads=2, inter=512, vocab=4096, v_depth=4, v_hidden=128,
                  v_heads=4, v_inter=256, fullatt=[1, 3], tie=True),
    # ~0.2B: large enough that full fine-tuning's optimizer state shows in a CPU benchmark's memory
    "medium": dict(hidden=1024, layers=8, heads=16, kv_heads=2, inter=2816, vocab=32000, v_depth=8, v_hidden=512,
                   v_heads=8, v_inter=1376, fullatt=[3, 7], tie=True),
    "3b": dict(hidden=2048, layers=36, heads=16, kv_heads=2, inter=11008, vocab=151936, v_depth=32,
               v_hidden=1280, v_heads=16, v_inter=3420, fullatt=[7, 15, 23, 31], tie=True),
}

# Images and frames of the demo are small: 112 px -> 8x8 patches of 14 -> 16 merged tokens per image.
MIN_PIXELS = 28 * 28 * 4
MAX_PIXELS = 224 * 224


def _training_corpus() -> list[str]:
    """Text the BPE learns merges from: the prompts, tags, numbers and quality words the task uses."""
    words = ("excellent good fair poor bad very not sharp blurry blur noise noisy grain compression "
             "artifacts blocking contrast washed out faded colors details texture edges clear smooth "
             "stutter frame drops temporal motion flicker the image video quality is has with and overall "
             "rating score high low medium slight strong visible severe mild distortion " + " ".join(PRERESQ_ASPECTS))
    scores = [f"{i / 100:.2f}" for i in range(100, 501)]
    teacher = [template_reasoning(d, k, 1.0 + 0.8 * (5 - k), m) for d in SYMPTOMS for k in STRENGTH
               for m in ("image", "video")]
    lines = [R1_SYSTEM_PROMPT, *QUALITY_QUESTION.values(), PRERESQ_IQA_QUESTION, PRERESQ_VQA_QUESTION, words, *teacher]
    lines += [f"<think>The image is {w}.</think><answer>{s}</answer>" for w, s in
              zip(words.split() * 20, scores)]
    return lines * 4


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, 2048), special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        bos_token=None, model_max_length=32768, chat_template=CHAT_TEMPLATE,
    )


def build_config(shape: str, tokenizer):
    from transformers import Qwen2_5_VLConfig

    s = SHAPES[shape]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = s["hidden"] // s["heads"]
    # mrope splits the rotary half-dim into (temporal, height, width) sections; Qwen uses [16,24,24]/64.
    half = head_dim // 2
    mrope = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    text = dict(
        vocab_size=max(s["vocab"], len(tokenizer)), hidden_size=s["hidden"], intermediate_size=s["inter"],
        num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
        max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=s["tie"],
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=s["v_depth"], hidden_size=s["v_hidden"], intermediate_size=s["v_inter"], num_heads=s["v_heads"],
        out_hidden_size=s["hidden"], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        window_size=112, fullatt_block_indexes=s["fullatt"], tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=s["tie"],
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return config


def build_processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        video_processor=Qwen2VLVideoProcessor(size=size, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
    )


def make_tiny_model(out_dir: str | Path, seed: int = 0, shape: str = "tiny") -> Path:
    """Write a loadable Qwen2.5-VL model dir with random weights; deterministic for (seed, shape)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {sorted(SHAPES)}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(SHAPES[shape]["vocab"])
    config = build_config(shape, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=config.text_config.eos_token_id, pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    (out / "qthink_tiny.json").write_text(json.dumps(tiny_marker(shape, seed), sort_keys=True))
    return out


def tiny_marker(shape: str, seed: int, **extra) -> dict:
    """What a cached model dir was built from (`qthink_tiny.json`): the shape's dimensions too, so a dir built
    under a name whose dimensions have changed since is rebuilt; `extra` names any training on top."""
    return {"shape": shape, "dims": SHAPES[shape], "seed": seed, "builder": BUILDER_VERSION, **extra}


def ensure_tiny_model(out_dir: str | Path, seed: int = 0, shape: str = "tiny") -> Path:
    """Reuse a previously built tiny model of the same (shape, seed); build it otherwise."""
    out = Path(out_dir).expanduser()
    marker = out / "qthink_tiny.json"
    if marker.exists() and json.loads(marker.read_text()) == tiny_marker(shape, seed):
        return out
    return make_tiny_model(out, seed=seed, shape=shape)
