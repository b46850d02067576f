"""Experiment: GRPO prompts on procedurally generated content (many 'pictures'), distorted like the benchmark."""
import sys, os
import numpy as np
from pathlib import Path
from PIL import Image, ImageDraw
sys.path.insert(0, "/work/wip")
from rollout.synthetic import random_crop, _draws, _row, held_out_sources
from rollout.distortions import distort_image, IMAGE_DISTORTIONS
from rollout.manifest import write_manifest


def procedural_picture(rng, size=256):
    f = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2
    f[0, 0] = 1.0
    def field(alpha):
        spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / f ** (alpha / 2)
        x = np.real(np.fft.ifft2(spec)); return (x - x.mean()) / (x.std() + 1e-9)
    lum = field(rng.uniform(1.6, 2.6))
    chroma = [field(rng.uniform(2.0, 3.0)) for _ in range(2)]
    base = rng.uniform(0.3, 0.7, 3)
    tint = rng.normal(0, 0.15, (2, 3))
    img = base + 0.18 * lum[..., None] + sum(c[..., None] * t for c, t in zip(chroma, tint)) * 0.5
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(2, 10)):
        x0, y0 = rng.integers(0, size, 2); w, h = rng.integers(size // 16, size // 2, 2)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        if kind == 0: draw.ellipse([x0, y0, x0 + w, y0 + h], fill=color)
        elif kind == 1: draw.rectangle([x0, y0, x0 + w, y0 + h], fill=color)
        elif kind == 2: draw.polygon([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3 + rng.integers(0, 3))], fill=color)
        else:
            for k in range(rng.integers(3, 12)):
                yy = y0 + k * rng.integers(3, 8); draw.line([x0, yy, x0 + w, yy], fill=color, width=int(rng.integers(1, 3)))
    arr = np.asarray(pil).astype(np.float32) / 255
    arr = arr + 0.025 * field(rng.uniform(0.8, 1.4))[..., None] * rng.uniform(0, 1)  # fine texture
    return (np.clip(arr, 0, 1) * 255).astype(np.uint8)


def build(out_dir, count, pictures=400, seed=0, size=112):
    out_dir = Path(out_dir); (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng0 = np.random.default_rng([seed, 7])
    pics = {f"proc{k:03d}": procedural_picture(rng0) for k in range(pictures)}
    rows = []
    for i, (src, dist, sev) in enumerate(_draws(tuple(pics), IMAGE_DISTORTIONS, count, np.random.default_rng([seed, 8]))):
        rng = np.random.default_rng([seed, 9, i])
        image = distort_image(random_crop(pics[src], size, rng), dist, sev, rng)
        item_id = f"proc{i:05d}_{src}_{dist}{sev}"
        Image.fromarray(image).save(out_dir / "images" / f"{item_id}.png")
        rows.append(_row(item_id, "image", f"images/{item_id}.png", src, dist, sev, ()))
    write_manifest(rows, out_dir / "manifest.parquet")
    Image.fromarray(np.concatenate([np.concatenate(list(pics.values())[r * 4:(r + 1) * 4], 1) for r in range(3)], 0)).save(out_dir / "pictures.png")


if __name__ == "__main__":
    build(sys.argv[1], int(sys.argv[2]))
