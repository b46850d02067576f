"""The demo's settings (the `demo:` section of qthink's config tree, composed by cluster/config.py). They
apply only where the run names no model (`model.path`) or no training data (`data.train`)."""

from __future__ import annotations

import typing
from dataclasses import dataclass


@dataclass
class DemoConfig:
    # the tiny model, built on first use under tiny_dir/<size>-seed<seed>
    tiny_dir: str = "~/.cache/qthink/tiny-qwen2.5-vl"
    tiny_size: typing.Literal["tiny", "small", "medium", "3b"] = "tiny"
    tiny_seed: int = 0
    # > 0: the tiny model's vision tower is first pre-trained this many steps on distortion-ranked pairs of
    # the synthetic training pictures (rollout/demo/vision_pretrain.py), the stand-in for a pretrained VLM
    vision_pretrain_steps: int = 0
    # the synthetic benchmark (rollout/demo/synthetic.py), built once per (seed, size) under synthetic_dir
    synthetic_dir: str = "~/.cache/qthink/synthetic"
    images: int = 540
    videos: int = 90
    sft_images: int = 0  # > 0: that many more training-picture images in the SFT rows
    # the SFT teacher (rollout/demo/template_teacher.py): misreading errs as a VLM does, exact is an oracle
    teacher: typing.Literal["misreading", "exact"] = "misreading"
