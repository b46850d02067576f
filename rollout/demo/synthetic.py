"""`qthink data synth`: a distortion benchmark built offline, for the embedded demo and CI.

No dataset can be downloaded there, so images come from the pictures bundled with the installed packages and
procedural scenes (rollout/demo/content.py), and videos are rendered scenes encoded with PyAV. Each item is
one (source, distortion, severity) draw, the undistorted crop (`pristine`) included; its MOS comes from the
severity through a per-type calibration (rollout/demo/distortions.py). Train and test are split by SOURCE
content: no picture or scene appears on both sides, so held-out scores measure quality judgement, not
memorised content. A second test set holds out the generator as well: the held-out pictures under the
distortions of rollout/demo/heldout_distortions.py, which nothing trains on. The same seed gives the same
manifests, the same image files byte for byte and the same video frames before encoding (per-item seeded
generators); the encoded MP4 bytes can differ slightly between builds, because libx264 is not
bit-reproducible here (see `rollout.video.encode_video`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rollout.demo.content import PICTURES, PROCEDURAL, SOURCES, load_source
from rollout.demo.distortions import (
    IMAGE_DISTORTIONS,
    PRISTINE,
    SEVERITIES,
    VIDEO_DISTORTIONS,
    distort_image,
    synthetic_mos,
)
from rollout.demo.heldout_distortions import HELDOUT_DISTORTIONS, distort_heldout, heldout_mos
from rollout.demo.synthetic_readme import write_readme
from rollout.demo.synthetic_video import render_pan, render_shapes, scene_times, video_crf
from rollout.manifest import ManifestRow, write_manifest
from rollout.video import encode_video

# bump when what a (seed, size) builds changes: the demo's caches are named by it (v2: all bundled pictures and
# procedural scenes, pristine crops, the held-out generator)
BENCHMARK_VERSION = 2
SHAPE_SCENES = tuple(f"shapes-{k}" for k in range(4))
TEST_FRACTION = 0.25
PRISTINE_SHARE = 5  # pristine crops per source, against 5 severities per distortion type: one type's share
HELDOUT_GENERATOR_CROPS = 2  # crops per held-out picture x held-out-generator type x severity
HELDOUT_GENERATOR_DATASET = "heldout-generator"


@dataclass(frozen=True)
class SyntheticBenchmark:
    out_dir: Path
    train_manifest: Path
    test_manifest: Path
    heldout_generator_manifest: Path
    train_rows: int
    test_rows: int
    heldout_generator_rows: int
    test_sources: tuple[str, ...]
    seconds: float


def held_out_sources(seed: int) -> tuple[str, ...]:
    """The held-out sources: a seeded quarter of the bundled pictures, of the procedural scenes and of the
    shape scenes."""
    rng = np.random.default_rng([seed, 99])
    held_out = []
    for group in (PICTURES, PROCEDURAL, SHAPE_SCENES):
        count = max(1, round(TEST_FRACTION * len(group)))
        held_out += [group[i] for i in sorted(rng.choice(len(group), size=count, replace=False))]
    return tuple(held_out)


def random_crop(picture: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square of 30-100% of the short side (never fewer than `size` pixels, so a pristine crop is
    never an upscaled, softened one), resized to size x size: many crops and scales of one picture.

    Different crops of one picture are different items but the same source: they share a split.
    """
    height, width = picture.shape[:2]
    short = min(height, width)
    side = int(rng.uniform(min(short, max(size, 0.3 * short)), short))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    crop = Image.fromarray(picture[top:top + side, left:left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS))


def rank_pairs(pictures: list[np.ndarray], pairs: int, size: int, rng: np.random.Generator,
               distortions: tuple[str, ...] = IMAGE_DISTORTIONS) -> tuple[list[np.ndarray], np.ndarray]:
    """`pairs` RankIQA-style pairs (Liu et al., 2017): ONE random crop under one distortion type at two
    different severities, severity 0 being the pristine crop. Returns 2 * pairs images (pair k at 2k, 2k + 1)
    and their MOS.

    Inside a pair the content is identical, so only the distortion tells the two images apart — the signal
    a tiny vision tower otherwise drowns in content (rollout/demo/vision_pretrain.py).
    """
    images, mos = [], []
    for _ in range(pairs):
        crop = random_crop(pictures[rng.integers(len(pictures))], size, rng)
        distortion = distortions[rng.integers(len(distortions))]
        for severity in rng.choice((0, *SEVERITIES), size=2, replace=False):
            kind = distortion if severity else PRISTINE
            images.append(distort_image(crop, kind, int(severity), rng))
            mos.append(synthetic_mos(kind, int(severity)))
    return images, np.asarray(mos, dtype=np.float32)


def _draws(sources: tuple[str, ...], distortions: tuple[str, ...], count: int, rng: np.random.Generator,
           pristine: bool = True) -> list[tuple[str, str, int]]:
    """`count` (source, distortion, severity) triples: all combinations, pristine crops included, in a seeded
    order, repeated as needed."""
    combos = [(s, d, v) for s in sources for d in distortions for v in SEVERITIES]
    combos += [(s, PRISTINE, 0) for s in sources for _ in range(PRISTINE_SHARE if pristine else 0)]
    order = rng.permutation(len(combos))
    return [combos[order[i % len(combos)]] for i in range(count)]


def _row(item_id: str, media_type: str, uri: str, source: str, distortion: str, severity: int,
         held_out: tuple[str, ...], mos: float | None = None, dataset: str = "synthetic") -> ManifestRow:
    mos = synthetic_mos(distortion, severity) if mos is None else mos
    return ManifestRow(id=item_id, media_type=media_type, uri=uri, mos_raw=mos, mos_scale=(1, 5),
                       dataset=dataset, split="test" if source in held_out else "train",
                       distortion=distortion, severity=severity, source=source)


def _build_images(out_dir: Path, count: int, size: int, seed: int, held_out,
                  sources: tuple[str, ...] = SOURCES, stream: int = 0) -> list[ManifestRow]:
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (source, distortion, severity) in enumerate(
            _draws(sources, IMAGE_DISTORTIONS, count, np.random.default_rng([seed, 0, stream]))):
        rng = np.random.default_rng([seed, 1, i, stream])
        image = distort_image(random_crop(load_source(source), size, rng), distortion, severity, rng)
        item_id = f"img{f'{stream}x' if stream else ''}{i:05d}_{source}_{distortion}{severity}"
        Image.fromarray(image).save(out_dir / "images" / f"{item_id}.png")
        rows.append(_row(item_id, "image", f"images/{item_id}.png", source, distortion, severity, held_out))
    return rows


def _build_videos(out_dir: Path, count: int, size: int, num_frames: int, fps: int, seed: int,
                  held_out) -> list[ManifestRow]:
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (source, distortion, severity) in enumerate(
            _draws(PICTURES + SHAPE_SCENES, VIDEO_DISTORTIONS, count, np.random.default_rng([seed, 2]),
                   pristine=False)):
        rng = np.random.default_rng([seed, 3, i])
        times = scene_times(distortion, severity, num_frames, rng)
        if source in SHAPE_SCENES:
            # The scene is fixed by its source id, so every video of "shapes-k" shows the same content.
            frames = render_shapes(size, times, np.random.default_rng([seed, 4, SHAPE_SCENES.index(source)]))
        else:
            frames = render_pan(load_source(source), size, times, rng)
        item_id = f"vid{i:05d}_{source}_{distortion}{severity}"
        encode_video(frames, out_dir / "videos" / f"{item_id}.mp4", fps=fps, crf=video_crf(distortion, severity))
        rows.append(_row(item_id, "video", f"videos/{item_id}.mp4", source, distortion, severity, held_out))
    return rows


def _build_heldout_generator(out_dir: Path, size: int, seed: int, held_out) -> list[ManifestRow]:
    """Every held-out picture under the held-out generator: nothing in training saw either."""
    (out_dir / "heldout_generator").mkdir(parents=True, exist_ok=True)
    sources = [s for s in SOURCES if s in held_out]
    draws = [(s, d, v, k) for s in sources for d in HELDOUT_DISTORTIONS for v in SEVERITIES
             for k in range(HELDOUT_GENERATOR_CROPS)]
    rows = []
    for i, (source, distortion, severity, _) in enumerate(draws):
        rng = np.random.default_rng([seed, 5, i])
        image = distort_heldout(random_crop(load_source(source), size, rng), distortion, severity, rng)
        item_id = f"gen{i:05d}_{source}_{distortion}{severity}"
        Image.fromarray(image).save(out_dir / "heldout_generator" / f"{item_id}.png")
        rows.append(_row(item_id, "image", f"heldout_generator/{item_id}.png", source, distortion, severity,
                         held_out, mos=heldout_mos(distortion, severity), dataset=HELDOUT_GENERATOR_DATASET))
    return rows


def build_synthetic_benchmark(out_dir: str | Path, images: int = 540, videos: int = 90, seed: int = 0,
                              image_size: int = 112, video_size: int = 112, video_frames: int = 16,
                              video_fps: int = 8) -> SyntheticBenchmark:
    """Write images/, videos/, train.parquet, test.parquet and README.md under `out_dir`.

    Defaults: 540 images and 90 videos of 16 frames at 112 px (a few seconds to build on 2 cores), and the
    held-out-generator set (heldout_generator.parquet: every held-out picture under every type and severity
    of the held-out generator, in HELDOUT_GENERATOR_CROPS crops). Sizes must be even (H.264 4:2:0).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    held_out = held_out_sources(seed)
    rows = _build_images(out_dir, images, image_size, seed, held_out)
    rows += _build_videos(out_dir, videos, video_size, video_frames, video_fps, seed, held_out)
    train = [row for row in rows if row.split == "train"]
    test = [row for row in rows if row.split == "test"]
    write_manifest(train, out_dir / "train.parquet")
    write_manifest(test, out_dir / "test.parquet")
    heldout_generator = _build_heldout_generator(out_dir, image_size, seed, held_out)
    write_manifest(heldout_generator, out_dir / "heldout_generator.parquet")
    benchmark = SyntheticBenchmark(out_dir, out_dir / "train.parquet", out_dir / "test.parquet",
                                   out_dir / "heldout_generator.parquet", len(train), len(test),
                                   len(heldout_generator), held_out,
                                   time.perf_counter() - started)
    write_readme(out_dir / "README.md", benchmark, rows,
                 dict(images=images, videos=videos, seed=seed, image_size=image_size, video_size=video_size,
                      video_frames=video_frames, video_fps=video_fps), PICTURES, SHAPE_SCENES)
    return benchmark


def build_sft_images(out_dir: str | Path, count: int, seed: int = 0, size: int = 112) -> Path:
    """`count` more images of the TRAINING pictures only (new crops, every distortion x severity and pristine),
    for SFT rows that are seen about once each; returns their manifest."""
    out_dir = Path(out_dir)
    held_out = held_out_sources(seed)
    sources = tuple(p for p in SOURCES if p not in held_out)
    rows = _build_images(out_dir, count, size, seed, held_out, sources=sources, stream=1)
    write_manifest(rows, out_dir / "manifest.parquet")
    return out_dir / "manifest.parquet"
