"""Experiment: GRPO prompts from the TRAINING pictures with crops of any scale (>= 112 source px up to the
short side), for more content variety than the benchmark's 55-100% crops."""
import sys
import numpy as np
from pathlib import Path
from PIL import Image
sys.path.insert(0, "/work/wip")
from rollout.synthetic import PICTURES, load_picture, _draws, _row, held_out_sources
from rollout.distortions import distort_image, IMAGE_DISTORTIONS
from rollout.manifest import write_manifest


def crop_any_scale(pic, size, rng):
    h, w = pic.shape[:2]; short = min(h, w)
    side = int(rng.uniform(min(short, max(size, 0.15 * short)), short))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return np.asarray(Image.fromarray(pic[y:y + side, x:x + side]).resize((size, size), Image.BICUBIC))


def build(out_dir, count, seed=0, size=112):
    out_dir = Path(out_dir); (out_dir / "images").mkdir(parents=True, exist_ok=True)
    held = held_out_sources(seed); sources = tuple(p for p in PICTURES if p not in held)
    pics = {s: load_picture(s) for s in sources}
    rows = []
    for i, (src, dist, sev) in enumerate(_draws(sources, IMAGE_DISTORTIONS, count, np.random.default_rng([seed, 0, 5]))):
        rng = np.random.default_rng([seed, 1, i, 5])
        image = distort_image(crop_any_scale(pics[src], size, rng), dist, sev, rng)
        item_id = f"ms{i:05d}_{src}_{dist}{sev}"
        Image.fromarray(image).save(out_dir / "images" / f"{item_id}.png")
        rows.append(_row(item_id, "image", f"images/{item_id}.png", src, dist, sev, held))
    write_manifest(rows, out_dir / "manifest.parquet")


if __name__ == "__main__":
    build(sys.argv[1], int(sys.argv[2]))
