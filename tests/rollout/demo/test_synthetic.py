"""The offline benchmark: readable, split by source, MOS from the calibration, identical for a seed."""

import hashlib

import numpy as np
import pytest

from rollout.demo.content import load_source
from rollout.demo.distortions import IMAGE_DISTORTIONS, PRISTINE_MOS, SEVERITIES, distort_image, synthetic_mos
from rollout.demo.heldout_distortions import HELDOUT_DISTORTIONS, heldout_mos
from rollout.demo.synthetic import (
    HELDOUT_GENERATOR_CROPS,
    HELDOUT_GENERATOR_DATASET,
    build_sft_images,
    build_synthetic_benchmark,
    held_out_sources,
    random_crop,
    rank_pairs,
)
from rollout.demo.synthetic_video import scene_times
from rollout.manifest import ManifestFile
from rollout.manifest_check import check_manifest
from rollout.video import load_video


def digest(folder):
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return build_synthetic_benchmark(out, images=60, videos=9, seed=5)


def test_every_row_is_readable(small_benchmark):
    for manifest in (small_benchmark.train_manifest, small_benchmark.test_manifest,
                     small_benchmark.heldout_generator_manifest):
        assert check_manifest(manifest).unreadable == []


def test_split_by_source_and_mos_from_calibration(small_benchmark):
    train = ManifestFile(small_benchmark.train_manifest).rows
    test = ManifestFile(small_benchmark.test_manifest).rows
    assert len(train) + len(test) == 69 and test
    assert not {row.source for row in train} & {row.source for row in test}
    assert {row.source for row in test} <= set(small_benchmark.test_sources)
    for row in train + test:
        assert row.mos == synthetic_mos(row.distortion, row.severity) and row.dataset == "synthetic"
    assert {row.media_type for row in train + test} == {"image", "video"}
    readme = (small_benchmark.out_dir / "README.md").read_text()
    assert "How the MOS was made" in readme and ", ".join(small_benchmark.test_sources) in readme


def test_the_held_out_generator_set_is_every_held_out_picture_under_every_type_and_severity(small_benchmark):
    rows = ManifestFile(small_benchmark.heldout_generator_manifest).rows
    image_sources = {s for s in small_benchmark.test_sources if not s.startswith("shapes-")}
    assert {r.source for r in rows} == image_sources
    assert len(rows) == len(image_sources) * len(HELDOUT_DISTORTIONS) * len(SEVERITIES) * HELDOUT_GENERATOR_CROPS
    assert {r.dataset for r in rows} == {HELDOUT_GENERATOR_DATASET} and {r.split for r in rows} == {"test"}
    assert all(r.mos == heldout_mos(r.distortion, r.severity) for r in rows)
    train = ManifestFile(small_benchmark.train_manifest).rows
    assert not {r.source for r in rows} & {r.source for r in train}


def test_pristine_crops_are_in_both_splits_above_every_level(tmp_path):
    bench = build_synthetic_benchmark(tmp_path, images=400, videos=0, seed=1)
    rows = ManifestFile(bench.train_manifest).rows + ManifestFile(bench.test_manifest).rows
    pristine = [r for r in rows if r.severity == 0]
    assert {r.split for r in pristine} == {"train", "test"}
    assert all(r.distortion == "pristine" and r.mos == PRISTINE_MOS for r in pristine)
    assert PRISTINE_MOS > max(r.mos for r in rows if r.severity)


def test_same_seed_same_manifests_images_and_video_frames(small_benchmark, tmp_path):
    again = build_synthetic_benchmark(tmp_path / "again", images=60, videos=9, seed=5)
    first, second = digest(small_benchmark.out_dir), digest(again.out_dir)
    assert first.keys() == second.keys()
    # Images, manifests and README are identical; H.264 bytes are not reproducible, the frames are.
    assert {k: v for k, v in first.items() if not k.endswith(".mp4")} == \
        {k: v for k, v in second.items() if not k.endswith(".mp4")}
    for name in (k for k in first if k.endswith(".mp4")):
        a = load_video(small_benchmark.out_dir / name, num_frames=16).frames.astype(float)
        b = load_video(again.out_dir / name, num_frames=16).frames.astype(float)
        assert np.abs(a - b).mean() < 2.0


@pytest.mark.parametrize("distortion", IMAGE_DISTORTIONS)
def test_severity_moves_the_image_further_from_the_original(distortion):
    original = random_crop(load_source("chelsea"), 112, np.random.default_rng(0))
    errors = [np.abs(distort_image(original, distortion, s, np.random.default_rng(0)).astype(float) - original).mean()
              for s in SEVERITIES]
    assert errors == sorted(errors) and errors[0] > 0
    mos = [synthetic_mos(distortion, s) for s in SEVERITIES]
    assert mos == sorted(mos, reverse=True) and 1 <= mos[-1] < mos[0] <= 5


def test_temporal_defects_freeze_or_skip_scene_time():
    rng = np.random.default_rng(0)
    clean = scene_times("compression", 3, 16, rng)
    assert np.allclose(np.diff(clean), 1 / 15)
    stutter = scene_times("stutter", 5, 16, rng)
    assert (np.diff(stutter) == 0).sum() >= 3 and stutter[0] == 0  # frozen frames repeat the previous time
    drop = np.diff(scene_times("frame_drop", 5, 16, rng))
    assert (drop > 2.5 * drop.min()).sum() >= 3  # a few jumps far bigger than the ordinary step


def test_rank_pairs_share_one_crop_and_one_distortion_at_two_severities():
    pictures = [load_source(name) for name in ("camera", "coffee", "astronaut")]
    images, mos = rank_pairs(pictures, 12, 56, np.random.default_rng(0))
    assert len(images) == 24 and mos.shape == (24,) and images[0].shape == (56, 56, 3)
    levels = {d: {synthetic_mos(d, s) for s in SEVERITIES} | {PRISTINE_MOS} for d in IMAGE_DISTORTIONS}
    for a, b in zip(mos[0::2], mos[1::2]):
        assert a != b
        assert any({round(float(a), 4), round(float(b), 4)} <= v for v in levels.values())

    def layout(image):  # coarse luminance pattern: the content, mostly untouched by any one distortion
        grey = image.astype(np.float32).mean(-1).reshape(7, 8, 7, 8).mean((1, 3)).ravel()
        return (grey - grey.mean()) / (grey.std() + 1e-6)

    within = [np.mean(layout(images[i]) * layout(images[i + 1])) for i in range(0, 24, 2)]
    across = [np.mean(layout(images[i]) * layout(images[i + 3])) for i in range(0, 21, 2)]
    assert np.median(within) > 0.8 and np.median(within) > np.median(across) + 0.3


def test_sft_images_come_from_training_pictures_only_and_are_all_readable(tmp_path):
    manifest = build_sft_images(tmp_path / "sft", 40, seed=0)
    report = check_manifest(manifest)
    rows = ManifestFile(manifest).rows
    assert len(rows) == 40 and not report.unreadable
    assert not {r.source for r in rows} & set(held_out_sources(0))
    assert len({r.id for r in rows}) == 40 and {r.split for r in rows} == {"train"}
