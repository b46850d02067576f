"""Parquet manifests: round trip, seeded per-epoch shuffling, a resumable cursor, and bad rows counted."""

import pytest
from PIL import Image

from rollout.manifest import ManifestReader, ManifestRow, rescale_mos, write_manifest
from rollout.manifest_check import check_manifest, format_report
from rollout.video import VideoClip, encode_video

from media_samples import jpeg_bytes, moving_frames, png_declaring


def image_row(index: int, uri: str | None = None, data: bytes | None = None, **extra) -> ManifestRow:
    return ManifestRow(id=f"img{index}", media_type="image", uri=uri, media_bytes=data,
                       mos_raw=10.0 * index, mos_scale=(0, 100), dataset="toy", split="train", **extra)


def write_good_images(folder, count: int) -> list[ManifestRow]:
    (folder / "media").mkdir()
    rows = []
    for i in range(count):
        Image.new("RGB", (16, 12), (i * 20, 0, 0)).save(folder / "media" / f"{i}.png")
        rows.append(image_row(i, uri=f"media/{i}.png"))
    return rows


def test_rescale_mos_maps_published_scale_onto_one_to_five():
    assert rescale_mos(0, 0, 100) == 1 and rescale_mos(100, 0, 100) == 5
    assert rescale_mos(3, 1, 5) == 3
    assert rescale_mos(0, 100, 0) == 5  # a DMOS: lower is better, give the scale reversed


def test_row_validation():
    with pytest.raises(ValueError):
        ManifestRow(id="x", media_type="audio", uri="a", mos_raw=1, mos_scale=(1, 5), dataset="d", split="s")
    with pytest.raises(ValueError):
        ManifestRow(id="x", media_type="image", uri="a", mos_raw=7, mos_scale=(1, 5), dataset="d", split="s")
    with pytest.raises(ValueError):
        write_manifest([image_row(1, uri="a"), image_row(1, uri="b")], "/dev/null")
    with pytest.raises(ValueError):
        write_manifest([image_row(1)], "/dev/null")  # neither uri nor bytes


def test_round_trip_keeps_every_column(tmp_path):
    rows = write_good_images(tmp_path, 3)
    rows[0].reasoning = "Sharp, well exposed."
    rows[0].aspects = {"sharpness": 4.5, "noise": 3.0}
    rows[1].distortion, rows[1].severity, rows[1].source = "blur", 3, "astronaut"
    write_manifest(rows, tmp_path / "m.parquet")
    reader = ManifestReader(tmp_path / "m.parquet", shuffle=False)
    read = [sample.row for sample in reader.iter_epoch()]
    assert [row.id for row in read] == ["img0", "img1", "img2"]
    assert read[0].reasoning == "Sharp, well exposed." and read[0].aspects == {"sharpness": 4.5, "noise": 3.0}
    assert (read[1].distortion, read[1].severity, read[1].source) == ("blur", 3, "astronaut")
    assert read[2].mos == pytest.approx(1.8) and read[2].mos_scale == (0.0, 100.0)


def test_inline_bytes_and_videos_are_decoded(tmp_path):
    encode_video(moving_frames(), tmp_path / "v.mp4", fps=10)
    rows = [image_row(i, data=jpeg_bytes()) for i in range(5)]
    rows.append(ManifestRow(id="vid", media_type="video", uri="v.mp4", mos_raw=4, mos_scale=(1, 5),
                            dataset="toy", split="test"))
    write_manifest(rows, tmp_path / "m.parquet", row_group_size=2)
    samples = list(ManifestReader(tmp_path / "m.parquet", seed=1).iter_epoch())
    assert len(samples) == 6
    media = {sample.row.id: sample.media for sample in samples}
    assert isinstance(media["img3"], Image.Image) and media["img3"].size == (64, 48)
    assert isinstance(media["vid"], VideoClip) and media["vid"].frames.shape[0] == 8


def test_shuffle_is_seeded_per_epoch_and_cursor_resumes(tmp_path):
    write_manifest(write_good_images(tmp_path, 10), tmp_path / "m.parquet")
    reader = ManifestReader(tmp_path / "m.parquet", seed=7)
    stream = iter(reader)
    seen = [next(stream).row.id for _ in range(13)]  # one epoch and three rows into the next
    assert sorted(seen[:10]) == sorted(f"img{i}" for i in range(10))
    assert seen[:10] != [f"img{i}" for i in range(10)] and seen[:10] != seen[3:13]
    state = reader.state_dict()
    assert (state["epoch"], state["position"]) == (1, 3)
    rest_of_epoch = [next(stream).row.id for _ in range(7)]

    resumed = ManifestReader(tmp_path / "m.parquet", seed=0)
    resumed.load_state_dict(state)
    assert [sample.row.id for sample in resumed.iter_epoch()] == rest_of_epoch
    assert (resumed.epoch, resumed.position) == (2, 0)
    again = ManifestReader(tmp_path / "m.parquet", seed=7)
    assert [s.row.id for s in again.iter_epoch()] == seen[:10]


def test_bad_media_are_named_by_check_and_skipped_and_counted_by_reader(tmp_path):
    """The issue's acceptance case: four broken files among good ones; nothing raises."""
    rows = write_good_images(tmp_path, 3)
    (tmp_path / "media" / "cut.jpg").write_bytes(jpeg_bytes()[:300])
    (tmp_path / "media" / "zero.mp4").write_bytes(b"")
    (tmp_path / "media" / "text.png").write_text("hello, I am text")
    (tmp_path / "media" / "bomb.png").write_bytes(png_declaring(30000, 30000))
    bad = {"cut": ("cut.jpg", "image", "truncated"), "zero": ("zero.mp4", "video", "empty"),
           "text": ("text.png", "image", "not_image"), "bomb": ("bomb.png", "image", "too_large")}
    for name, (file, media_type, _) in bad.items():
        rows.append(ManifestRow(id=name, media_type=media_type, uri=f"media/{file}", mos_raw=3,
                                mos_scale=(1, 5), dataset="toy", split="train"))
    write_manifest(rows, tmp_path / "m.parquet")

    report = check_manifest(tmp_path / "m.parquet")
    assert report.rows == 7 and report.media_types == {"image": 6, "video": 1}
    assert {row.id: row.reason for row in report.unreadable} == {name: v[2] for name, v in bad.items()}
    text = format_report(report)
    for name, (file, _, reason) in bad.items():
        assert f"id={name} media/{file}: {reason}" in text

    reader = ManifestReader(tmp_path / "m.parquet", seed=3)
    good = [sample.row.id for sample in reader.iter_epoch()]
    assert sorted(good) == ["img0", "img1", "img2"]
    assert reader.skipped == 4
    assert dict(reader.skip_counts) == {"truncated": 1, "empty": 1, "not_image": 1, "too_large": 1}
    assert set(reader.skipped_rows) == set(bad)


def test_reader_stops_when_nothing_is_usable(tmp_path):
    write_manifest([image_row(1, uri="missing.png")], tmp_path / "m.parquet")
    reader = ManifestReader(tmp_path / "m.parquet")
    assert list(reader) == [] and reader.skip_counts == {"missing": 1}


def test_check_report_has_mos_statistics(tmp_path):
    write_manifest(write_good_images(tmp_path, 5), tmp_path / "m.parquet")
    report = check_manifest(tmp_path / "m.parquet")
    assert not report.unreadable
    assert report.mos["min"] == pytest.approx(1.0) and report.mos["max"] == pytest.approx(2.6)
    assert "unreadable: 0" in format_report(report)


def test_not_a_manifest_is_a_clear_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a qthink manifest"):
        check_manifest(tmp_path / "other.parquet")
