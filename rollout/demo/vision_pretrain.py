"""Distortion-ranking pre-training of a tiny Qwen2.5-VL's vision tower: the demo's stand-in for a
pretrained base model.

Why: real runs start from a Qwen2.5-VL whose vision encoder already sees blur, noise and blocking. The
demo's randomly initialised 0.45M-parameter model does not, and learns quality from a few hundred pictures
only by memorising them: held-out SRCC stayed at 0.0-0.25 after SFT, and at ~0.2 even for a linear head
regressing MOS straight off the tower on freshly distorted crops (measured, README "Demo"). Pairs of the
SAME crop at two severities of one distortion (RankIQA, Liu et al. 2017) cancel the content, so the only
thing left to learn is the distortion: the same head reached ~0.45 held-out SRCC in 2,000 steps. One side
of a pair can be the pristine crop, so the tower also learns where clean pictures sit.

Noise comes first (NOISE_FIRST_STEPS). Probes of session 12 (held-out pictures, head SRCC within a type):
trained on all types from the start, the tower ranks noise at -0.18 to 0.00 whatever the rate, head, tower
width or an added type classifier, because more noise reads as more detail; on noise pairs alone it reaches
0.96; 600 noise-only steps and then 1,500 mixed ones keep 0.67 for noise with blur at 0.76. JPEG at 112 px
stays weak (0.1-0.2).

The head (mean-pooled tokens -> one number) is thrown away afterwards; the language model is never
touched, so the model still writes noise before SFT. Only pictures of the training split are used.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

PAIRS_PER_STEP = 16
# The first steps see noise pairs only. Mixed from the start, the tower learns "more fine detail = better"
# from blur, pixelation and contrast, and noise, which adds fine detail, then reads as quality; learned
# first, noise stays learned (session-12 probes, docs/results.md).
NOISE_FIRST_STEPS = 600
RANK_MARGIN = 0.5  # in MOS units: a 1-level severity gap is ~0.8 MOS


def pair_loss(pred: torch.Tensor, mos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared error to the centred MOS plus a margin ranking loss inside each (2k, 2k + 1) pair.

    Returns (loss, fraction of pairs in the right order). The regression term keeps the scale of the
    different distortion types comparable; the ranking term carries the content-free signal.
    """
    target = mos - 3.0
    sign = torch.sign(target[0::2] - target[1::2])
    gap = pred[0::2] - pred[1::2]
    loss = (pred - target).pow(2).mean() + torch.relu(RANK_MARGIN - sign * gap).mean()
    return loss, (sign * gap > 0).float().mean()


class PairBatches(torch.utils.data.IterableDataset):
    """Pairs cut, distorted and turned into patches, endlessly. In a DataLoader worker this runs beside the
    tower's step: on 2 cores the two take about as long as each other (~0.1 s per 16 pairs)."""

    def __init__(self, sample_pairs, image_processor):
        self.sample_pairs, self.image_processor = sample_pairs, image_processor

    def __iter__(self):
        while True:
            images, mos = self.sample_pairs()
            inputs = self.image_processor(images=images, return_tensors="pt")
            yield inputs["pixel_values"], inputs["image_grid_thw"], torch.from_numpy(mos)


def pretrain_vision_tower(model, processor, sample_pairs, steps: int, lr: float = 1e-3,
                          progress: bool = True, workers: int = 1) -> list[dict]:
    """Train `model.model.visual` for `steps` steps on `sample_pairs()` -> (images, mos); returns the curve.
    `workers` > 0 prepares batches in that many processes (one keeps batches in `sample_pairs`' order)."""
    from tqdm import tqdm

    visual = model.model.visual
    head = torch.nn.Linear(model.config.text_config.hidden_size, 1)
    optimizer = torch.optim.AdamW([*visual.parameters(), *head.parameters()], lr=lr)
    curve, window = [], []
    batches = iter(torch.utils.data.DataLoader(PairBatches(sample_pairs, processor.image_processor), batch_size=None,
                                               num_workers=workers, prefetch_factor=4 if workers else None))
    bar = tqdm(range(1, steps + 1), desc="vision pre-training", dynamic_ncols=True, disable=not progress)
    for step in bar:
        pixel_values, grid_thw, mos = next(batches)
        tokens = visual(pixel_values, grid_thw=grid_thw).pooler_output
        pred = head(tokens.view(len(mos), -1, tokens.shape[-1]).mean(1)).squeeze(-1)
        loss, accuracy = pair_loss(pred, mos)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        window.append((loss.item(), accuracy.item()))
        if step % 100 == 0 or step == steps:
            loss_mean, acc_mean = np.mean(window, axis=0)
            curve.append({"step": step, "loss": round(float(loss_mean), 4), "pair_accuracy": round(float(acc_mean), 4)})
            bar.set_postfix(loss=f"{loss_mean:.3f}", pair_acc=f"{acc_mean:.2f}")
            window = []
    return curve


def ensure_pretrained_tiny(out_dir: str | Path, seed: int, shape: str, steps: int, data_seed: int,
                           progress: bool = True) -> Path:
    """The tiny model of (shape, seed) with its vision tower pre-trained for `steps` on the training-split
    pictures of the synthetic benchmark of `data_seed`; built once, then reused from `out_dir`."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from rollout.demo.content import SOURCES, load_source
    from rollout.demo.distortions import IMAGE_DISTORTIONS
    from rollout.demo.synthetic import BENCHMARK_VERSION, held_out_sources, rank_pairs
    from rollout.demo.tiny_model import make_tiny_model, tiny_marker

    out = Path(out_dir).expanduser()
    sources = [name for name in SOURCES if name not in held_out_sources(data_seed)]
    marker = tiny_marker(shape, seed, vision_pretrain={"steps": steps, "sources": sources, "pairs": PAIRS_PER_STEP,
                                                                "content": BENCHMARK_VERSION,
                                                                "noise_first": NOISE_FIRST_STEPS})
    marker_path = out / "qthink_tiny.json"
    if marker_path.exists() and json.loads(marker_path.read_text()) == marker:
        return out
    make_tiny_model(out, seed=seed, shape=shape)  # its plain marker stays until pre-training has finished
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(out)
    pictures = [load_source(name) for name in sources]
    rng = np.random.default_rng([seed, data_seed, 7])
    drawn = itertools.count()  # counts in whichever process draws the pairs (the DataLoader worker)

    def sample_pairs():
        types = ("noise",) if next(drawn) < NOISE_FIRST_STEPS else IMAGE_DISTORTIONS
        return rank_pairs(pictures, PAIRS_PER_STEP, 112, rng, types)

    started = time.perf_counter()
    curve = pretrain_vision_tower(model, processor, sample_pairs, steps, progress=progress)
    model.save_pretrained(out)
    (out / "vision_pretrain.json").write_text(json.dumps(
        {"sources": sources, "steps": steps, "seconds": round(time.perf_counter() - started, 1), "curve": curve},
        indent=1))
    marker_path.write_text(json.dumps(marker, sort_keys=True))
    return out
