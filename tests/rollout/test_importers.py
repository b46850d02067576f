"""Each importer reads a tiny fixture written here in its dataset's published layout."""

import csv

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from rollout.importers import FORMATS, import_dataset
from rollout.manifest import ManifestFile
from rollout.manifest_check import check_manifest
from rollout.video import encode_video

from media_samples import moving_frames


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def touch(path, image=False, video=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if image:
        Image.new("RGB", (8, 6), (90, 120, 30)).save(path)
    elif video:
        encode_video(moving_frames(count=6, height=16, width=16), path, fps=6)
    else:
        path.write_bytes(b"placeholder")


def cell(strings):
    """A MATLAB cell column, as savemat writes it from an object array."""
    out = np.empty((len(strings), 1), dtype=object)
    out[:, 0] = strings
    return out


def imported(tmp_path, format, root):
    result = import_dataset(format, root, tmp_path / "out" / f"{format}.parquet")
    return result, ManifestFile(result.out_path).rows


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="koniq10k"):
        import_dataset("imagenet", tmp_path, tmp_path / "x.parquet")


def test_koniq10k_with_official_sets_and_real_images(tmp_path):
    root = tmp_path / "koniq"
    write_csv(root / "koniq10k_scores_and_distributions.csv",
              ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"],
              [["a.jpg", 0, 1, 10, 80, 9, 100, 3.97, 0.5, 71.2], ["b.jpg", 20, 50, 30, 0, 0, 100, 2.1, 0.7, 30.1]])
    write_csv(root / "koniq10k_distributions_sets.csv", ["image_name", "set"],
              [["a.jpg", "training"], ["b.jpg", "test"]])
    for name in ("a.jpg", "b.jpg"):
        touch(root / "1024x768" / name, image=True)
    result, rows = imported(tmp_path, "koniq10k", root)
    assert result.rows == 2 and result.missing_media == 0
    assert [(r.mos_raw, r.mos, r.split) for r in rows] == [(3.97, 3.97, "train"), (2.1, 2.1, "test")]
    assert rows[0].uri == "../koniq/1024x768/a.jpg"
    assert check_manifest(result.out_path).unreadable == []


def test_kadid10k_keeps_reference_type_and_level(tmp_path):
    root = tmp_path / "kadid"
    write_csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"],
              [["I01_01_01.png", "I01.png", 4.57, 0.5], ["I01_01_05.png", "I01.png", 1.2, 0.3]])
    _, rows = imported(tmp_path, "kadid10k", root)
    assert [(r.mos, r.source, r.distortion, r.severity) for r in rows] == [
        (4.57, "I01", "01", 1), (1.2, "I01", "01", 5)]
    assert rows[0].uri.endswith("kadid/images/I01_01_01.png")


SPAQ_HEADER = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
SPAQ_ROWS = [["00001.jpg", 42.5, 50, 40, 45, 30, 60], ["00002.jpg", 80, 70, 75, 72, 65, 85]]


def test_spaq_from_a_csv_export_of_the_sheet(tmp_path):
    root = tmp_path / "spaq"
    write_csv(root / "Annotations" / "MOS and Image attribute scores.csv", SPAQ_HEADER, SPAQ_ROWS)
    _, rows = imported(tmp_path, "spaq", root)
    assert rows[0].mos == pytest.approx(1 + 4 * 0.425) and rows[0].mos_scale == (0.0, 100.0)
    assert rows[1].aspects == {"brightness": 70, "colorfulness": 75, "contrast": 72, "noisiness": 65, "sharpness": 85}
    assert rows[1].uri.endswith("spaq/TestImage/00002.jpg")


def test_spaq_from_the_published_xlsx(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    root = tmp_path / "spaq"
    (root / "Annotations").mkdir(parents=True)
    book = openpyxl.Workbook()
    book.active.append(SPAQ_HEADER)
    for row in SPAQ_ROWS:
        book.active.append(row)
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    _, rows = imported(tmp_path, "spaq", root)
    assert [r.mos_raw for r in rows] == [42.5, 80]


def test_livec_skips_the_seven_training_images(tmp_path):
    root = tmp_path / "livec"
    (root / "Data").mkdir(parents=True)
    names = [f"t{i}.bmp" for i in range(1, 8)] + ["10.JPG", "100.bmp"]
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell(names)})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[50.0] * 7 + [63.9, 25.0]])})
    _, rows = imported(tmp_path, "livec", root)
    assert [r.uri.rsplit("/", 1)[1] for r in rows] == ["10.JPG", "100.bmp"]
    assert rows[0].mos == pytest.approx(1 + 4 * 0.639)


def test_agiqa3k(tmp_path):
    root = tmp_path / "agiqa"
    write_csv(root / "data.csv", ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality",
                                  "mos_align", "std_align"],
              [["AttnGAN_normal_000.jpg", "a cat", "", "", "", 1.5, 0.4, 2.1, 0.5]])
    _, rows = imported(tmp_path, "agiqa3k", root)
    assert rows[0].mos == pytest.approx(2.2) and rows[0].aspects == {"alignment": 2.1}


def test_lsvq_splits_from_is_test_and_the_1080p_list(tmp_path):
    root = tmp_path / "lsvq"
    write_csv(root / "labels_train_test.csv", ["name", "p1", "height", "width", "mos", "frame_number", "is_test"],
              [["yfcc-batch1/11", 0, 540, 960, 65.2, 300, "False"], ["yfcc-batch1/12", 0, 540, 960, 40.0, 300, "True"],
               ["ia-batch1/13", 720, 1280, 55.0, 240]])  # a short tail row: name, height, width, mos, frame_number
    write_csv(root / "labels_test_1080p.csv", ["name", "mos"], [["yfcc-batch2/21", 70.0]])
    _, rows = imported(tmp_path, "lsvq", root)
    assert [(r.uri.split("lsvq/")[1], r.mos_raw, r.split) for r in rows] == [
        ("yfcc-batch1/11.mp4", 65.2, "train"), ("yfcc-batch1/12.mp4", 40.0, "test"),
        ("ia-batch1/13.mp4", 55.0, "all"), ("yfcc-batch2/21.mp4", 70.0, "test_1080p")]
    assert all(r.media_type == "video" for r in rows)


def test_konvid1k_with_real_videos(tmp_path):
    root = tmp_path / "konvid"
    write_csv(root / "KoNViD_1k_mos.csv", ["flickr_id", "mos"], [[3337642103, 3.42], [4495254692, 2.9]])
    touch(root / "KoNViD_1k_videos" / "3337642103.mp4", video=True)
    result, rows = imported(tmp_path, "konvid1k", root)
    assert [r.mos for r in rows] == [3.42, 2.9] and result.missing_media == 1
    report = check_manifest(result.out_path)
    assert [(u.id, u.reason) for u in report.unreadable] == [("konvid1k/KoNViD_1k_videos/4495254692.mp4", "missing")]


def test_livevqc(tmp_path):
    root = tmp_path / "livevqc"
    root.mkdir()
    savemat(root / "data.mat", {"video_list": cell(["A001.mp4", "B101.mp4"]), "mos": np.array([[80.2], [20.5]])})
    _, rows = imported(tmp_path, "livevqc", root)
    assert [r.uri.split("livevqc/")[1] for r in rows] == ["Video/A001.mp4", "Video/B101.mp4"]
    assert rows[1].mos == pytest.approx(1 + 4 * 0.205)


def test_youtube_ugc_finds_nested_files_by_name(tmp_path):
    root = tmp_path / "ugc"
    write_csv(root / "original_videos_MOS_for_YouTube_UGC_dataset.csv",
              ["vid", "MOS full", "MOS chunk 00"], [["Gaming_360P-0b98", 3.8, 3.7], ["Vlog_720P-11c5", 2.4, 2.5]])
    touch(root / "original_videos" / "Gaming" / "360P" / "Gaming_360P-0b98.mkv")
    result, rows = imported(tmp_path, "youtube_ugc", root)
    assert rows[0].uri.endswith("ugc/original_videos/Gaming/360P/Gaming_360P-0b98.mkv")
    assert [r.mos for r in rows] == [3.8, 2.4] and result.missing_media == 1


def test_every_format_has_a_test():
    assert set(FORMATS) == {"koniq10k", "kadid10k", "spaq", "livec", "agiqa3k", "lsvq", "konvid1k", "livevqc",
                            "youtube_ugc"}
