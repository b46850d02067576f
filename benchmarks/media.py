"""Media loading cost: video decode + sampling with and without VQAThinker's six perturbations, images/s.

docs/design.md's target: decode + sample + all six temporal perturbations <= 1.2x decode + sample alone —
the perturbations work on the decoded frames and must never decode again. The video is a 10 s, 30 fps,
640x360 H.264 clip (a camera panning over a scikit-image picture); 16 frames are sampled at <= 448 px, as
VQAThinker's evaluation does. Images: 48 JPEGs of 1024x768 (KonIQ's size) loaded to RGB.

    .venv/bin/python benchmarks/media.py [--repeats 15]

Prints a table and writes benchmarks/results/media.json with a machine description.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.machine import machine, median_seconds, write_result
from rollout.demo.content import load_source
from rollout.demo.synthetic import random_crop
from rollout.demo.synthetic_video import render_pan
from rollout.images import load_image
from rollout.perturbations import TemporalPerturbation, perturb
from rollout.video import encode_video, load_video

RESULTS = Path(__file__).parent / "results" / "media.json"


def main(repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        video = folder / "pan.mp4"
        picture = load_source("astronaut")
        frames = render_pan(picture, 360, np.linspace(0, 1, 300), np.random.default_rng(0))
        wide = np.concatenate([frames, frames[:, :, :280]], axis=2)  # 640 x 360
        encode_video(np.ascontiguousarray(wide), video, fps=30, crf=23)
        images = []
        for i in range(48):
            crop = random_crop(picture, 768, np.random.default_rng(i))
            path = folder / f"{i}.jpg"
            Image.fromarray(np.concatenate([crop, crop[:, :256]], axis=1)).save(path, quality=90)
            images.append(path)

        def decode_and_sample():
            return load_video(video, num_frames=16, max_side=448)

        def decode_sample_and_perturb():
            clip = decode_and_sample()
            for seed, mode in enumerate(TemporalPerturbation):
                perturb(clip.frames, mode, seed)

        decode = median_seconds(decode_and_sample, repeats)
        with_perturb = median_seconds(decode_sample_and_perturb, repeats)
        load_all = median_seconds(lambda: [load_image(path) for path in images], max(3, repeats // 3))

    result = {
        "machine": machine("numpy", "decord", "av", "PIL"),
        "video": {"source": "640x360, 300 frames, 30 fps, H.264 CRF 23", "sampled": "16 frames, max side 448",
                  "decode_sample_ms": 1000 * decode, "decode_sample_perturb6_ms": 1000 * with_perturb,
                  "ratio": with_perturb / decode, "goal_ratio": 1.2},
        "images": {"source": "48 JPEG 1024x768", "images_per_s": len(images) / load_all},
        "repeats": repeats,
    }
    print(f"{'measure':<42}{'value':>12}")
    print(f"{'decode + sample 16 frames (ms)':<42}{1000 * decode:>12.1f}")
    print(f"{'decode + sample + 6 perturbations (ms)':<42}{1000 * with_perturb:>12.1f}")
    print(f"{'ratio (goal <= 1.2)':<42}{with_perturb / decode:>12.3f}")
    print(f"{'images/s (1024x768 JPEG -> RGB)':<42}{len(images) / load_all:>12.1f}")
    write_result(result, RESULTS)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    main(parser.parse_args().repeats)
