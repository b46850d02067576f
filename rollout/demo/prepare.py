"""`prepare_demo`: the embedded demo's model and data, built on first use and cached (the only entry from
the pipeline into rollout/demo)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollout.demo.config import DemoConfig


@dataclass(frozen=True)
class DemoInputs:
    model: str  # a HF model dir; "" when not asked for
    train: str  # manifests; "" when not asked for
    sft: str
    test: tuple[str, ...]  # held-out pictures, then the same pictures under the held-out generator


def prepare_demo(demo: DemoConfig, seed: int, model: bool, data: bool, progress: bool = True) -> DemoInputs:
    """The tiny model (`model`) and the synthetic benchmark with template-teacher SFT rows (`data`). Every
    piece is cached under a name that holds what it was built from, so runs with other settings never
    rebuild or race on one folder."""
    data_inputs = _data(demo, seed) if data else ("", "", ())
    return DemoInputs(_tiny_model(demo, seed, progress) if model else "", *data_inputs)


def _tiny_model(demo: DemoConfig, data_seed: int, progress: bool) -> str:
    folder = Path(demo.tiny_dir).expanduser() / f"{demo.tiny_size}-seed{demo.tiny_seed}"
    steps = demo.vision_pretrain_steps
    if steps:  # the tower learns from the training pictures of the benchmark of `data_seed`
        from rollout.demo.vision_pretrain import ensure_pretrained_tiny

        return str(ensure_pretrained_tiny(f"{folder}-rank{steps}-data{data_seed}", demo.tiny_seed, demo.tiny_size,
                                          steps, data_seed, progress=progress))
    from rollout.demo.tiny_model import ensure_tiny_model

    return str(ensure_tiny_model(folder, demo.tiny_seed, demo.tiny_size))


def _data(demo: DemoConfig, seed: int) -> tuple[str, str, tuple[str, ...]]:
    from rollout.demo.synthetic import BENCHMARK_VERSION, build_sft_images, build_synthetic_benchmark
    from rollout.demo.template_teacher import template_distill
    from rollout.manifest import ManifestFile, write_manifest

    root = Path(demo.synthetic_dir).expanduser() / f"seed{seed}-{demo.images}x{demo.videos}-v{BENCHMARK_VERSION}"
    if not (root / "README.md").exists():  # written last: there = complete
        build_synthetic_benchmark(root, images=demo.images, videos=demo.videos, seed=seed)
    tag = "" if demo.teacher == "exact" else f"-{demo.teacher}"  # the exact teacher's files keep their first names
    sft = root / f"train_sft{tag}.parquet"
    if not sft.exists():
        template_distill(root / "train.parquet", sft, demo.teacher)
    if demo.sft_images:
        count = demo.sft_images
        plus, extra_sft = root / f"train_sft{tag}_plus{count}.parquet", root / f"sft{count}{tag}.parquet"
        if not plus.exists():
            images = root / f"sft{count}" / "manifest.parquet"  # written last: there = complete
            if not images.exists():
                build_sft_images(root / f"sft{count}", count, seed)
            template_distill(images, extra_sft, demo.teacher)
            write_manifest(ManifestFile(sft).rows + ManifestFile(extra_sft).rows, plus)
        sft = plus
    return str(root / "train.parquet"), str(sft), (str(root / "test.parquet"), str(root / "heldout_generator.parquet"))
