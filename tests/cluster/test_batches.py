import numpy as np
import pytest
import ray
from PIL import Image

from actors.media import fetched
from cluster.batches import prompt_token_ids, request_for
from cluster.config import load_config
from cluster.remote_media import remote_rollout_batch, usable_requests
from rewards import PRESETS
from rollout.demo.synthetic import build_synthetic_benchmark
from rollout.manifest import ManifestReader, ManifestRow, Sample
from rollout.perturbations import perturbed_copy
from rollout.records import RequestRef
from rollout.video import VideoClip


def _samples():
    img = Sample(ManifestRow("i0", "image", 3.0, (1, 5), "d", "train"), Image.new("RGB", (112, 112)))
    frames = (np.arange(8)[:, None, None, None] * np.ones((8, 16, 16, 3))).astype(np.uint8)
    vid = Sample(ManifestRow("v0", "video", 4.0, (1, 5), "d", "train"), VideoClip(frames, {"fps": 4.0}))
    return [img, vid]


def test_preset_decides_the_question_and_multiframe_shows_a_grid_plus_local_frames():
    multiframe = load_config(None, ["data.video_view=multiframe"])
    reqs = [request_for(s, 0, PRESETS["preresq-vqa"], multiframe) for s in _samples()]
    assert "five aspects" not in reqs[1].question and "two ratings" in reqs[1].question
    assert reqs[1].media_type == "images" and len(reqs[1].frames) == 4  # composite + 3 local frames
    iqa = request_for(_samples()[0], 0, PRESETS["preresq-iqa"], load_config())
    assert "five aspects" in iqa.question
    short = request_for(_samples()[0], 0, PRESETS["qthink"], load_config(None, ["data.prompt_style=short"]))
    assert not short.system_prompt and len(short.question) < 120


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """A real manifest (8 images, 4 videos) with its second row's media truncated to 20 bytes."""
    bench = build_synthetic_benchmark(tmp_path_factory.mktemp("synth"), images=8, videos=4)
    reader = ManifestReader(bench.train_manifest, seed=0)
    bad = reader.manifest.rows[int(reader.order(0)[1])]
    path = bench.train_manifest.parent / bad.uri
    path.write_bytes(path.read_bytes()[:20])
    return bench.train_manifest, bad.id


def test_media_decoded_off_the_driver_equal_the_driver_path_and_bad_rows_are_counted(ray_local, manifest):
    """The requests a worker fetches (and the perturbed copies it makes) are those the driver used to build
    itself: same rows, cursor, skip counts, seeds, pixels and perturbations."""
    path, bad = manifest
    cfg, preset = load_config(), PRESETS["qthink"]
    context = ray.put((preset, cfg))
    remote_reader, local_reader = ManifestReader(path, seed=0), ManifestReader(path, seed=0)
    rows, refs = remote_rollout_batch(remote_reader, 5, 3, True, context, seed=0)
    local = [s for _, s in zip(range(5), local_reader)]  # the same rows decoded here, in the driver
    assert [r.id for r in rows] == [s.row.id for s in local] and bad not in [r.id for r in rows]
    assert remote_reader.state_dict() == local_reader.state_dict()  # cursor and skip counts ("truncated")
    assert sum(remote_reader.skip_counts.values()) == 1 and bad in remote_reader.skipped_rows
    assert all(isinstance(r, RequestRef) for r in refs)
    originals = [request_for(s, 3 * 1009 + i, preset, cfg) for i, s in enumerate(local)]
    want = originals + [perturbed_copy(r, 3 * 131 + i) for i, r in enumerate(originals) if r.media_type == "video"]
    got = fetched(refs)
    assert [(r.prompt_id, r.variant, r.seed) for r in got] == [(r.prompt_id, r.variant, r.seed) for r in want]
    assert any(r.variant == "perturbed" for r in got)
    for g, w in zip(got, want):
        assert g.question == w.question
        assert np.array_equal(g.image if g.media_type == "image" else g.frames,
                              w.image if w.media_type == "image" else w.frames)
    videos = [r for r in got if r.media_type == "video" and r.variant == "original"]
    for original, copy in zip(videos, [r for r in got if r.variant == "perturbed"], strict=True):
        assert not np.array_equal(copy.frames, original.frames)


def test_sft_prompt_ids_from_the_decode_tasks_are_the_drivers_expansion_of_the_same_media(
        ray_local, manifest, tiny_model_dir):
    """SFT rows reach the learner by reference; the prompt ids the learner trains on come from the decode tasks
    (the processor expands them from the pixels) and equal what the driver used to compute from its own copy."""
    from transformers import AutoProcessor

    path, bad = manifest
    cfg, preset = load_config(None, [f"model.path={tiny_model_dir}"]), PRESETS["qthink"]
    usable = usable_requests(ManifestReader(path, seed=0), 6, ray.put((preset, cfg)), prompt_ids=True)
    local = [s for _, s in zip(range(6), ManifestReader(path, seed=0))]
    assert [row.id for row, _, _ in usable] == [s.row.id for s in local] and bad not in [s.row.id for s in local]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    want = [prompt_token_ids(processor, request_for(s, None, preset, cfg)) for s in local]
    assert [decoded.prompt_ids for _, decoded, _ in usable] == want
    pads = {processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>")}
    assert {s.row.media_type for s in local} == {"image", "video"}
    assert all(len(pads & set(ids)) == 1 for ids in want)  # each expanded from its own media
