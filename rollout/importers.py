"""`qthink data import`: the published annotation files of the standard IQA/VQA sets -> one parquet manifest.

Each reader takes the dataset's folder as its authors distribute it and returns manifest rows whose `uri`
is relative to that folder; `import_dataset` rebases them on the manifest's folder and writes the file.
The raw MOS and its published scale are kept; `mos` is rescaled to [1, 5]. Layouts were checked against
public loaders (HyperIQA, pyiqa, VSFA/FAST-VQA-style scripts) where noted "confirmed"; the rest are marked
"assumed" in their docstrings and in the module's report.

Datasets without an official split get split "all": the choice of a split protocol (random 80/20 by
reference for KADID, ...) belongs to the experiment, not the importer.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rollout.manifest import ManifestRow, write_manifest

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".yuv")


# ---------------------------------------------------------------------------------------------- tables

def _key(name: str) -> str:
    """Column names compared without case, spaces or underscores ("MOS full" == "mos_full" == "MOSfull")."""
    return re.sub(r"[\s_]+", "", str(name)).lower()


def _field(record: dict, *names: str):
    """The value of the first of `names` present in `record` (compared by `_key`)."""
    keys = {_key(column): column for column in record}
    for name in names:
        if _key(name) in keys:
            return record[keys[_key(name)]]
    raise KeyError(f"none of the columns {names} in {sorted(record)}")


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _read_sheet(path: Path) -> list[dict]:
    """The first sheet of an .xlsx as dicts; a CSV export beside it (same name, .csv) is used if present."""
    exported = path.with_suffix(".csv")
    if exported.is_file():
        return _read_csv(exported)
    try:
        import openpyxl
    except ImportError:
        raise RuntimeError(f"reading {path.name} needs openpyxl (pip install openpyxl), "
                           f"or export the sheet to {exported.name}") from None
    sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
    rows = [row for row in sheet.iter_rows(values_only=True) if any(cell is not None for cell in row)]
    header = [str(cell) for cell in rows[0]]
    return [dict(zip(header, row)) for row in rows[1:]]


def _read_mat(path: Path) -> dict:
    from scipy.io import loadmat

    return loadmat(str(path))


def _mat_strings(cell_array: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings (loadmat: object array of 1-element string arrays) as a list."""
    return [str(np.asarray(item).ravel()[0]) for item in np.asarray(cell_array, dtype=object).ravel()]


def _first_folder(root: Path, *candidates: str) -> str:
    """The first existing sub-folder among candidates, as a prefix for uris ("" for the root itself)."""
    for candidate in candidates:
        if (root / candidate).is_dir():
            return candidate
    return ""


def _row(dataset: str, media_type: str, uri: str, mos_raw, scale: tuple[float, float], split: str = "all",
         **extra) -> ManifestRow:
    return ManifestRow(id=f"{dataset}/{uri}", media_type=media_type, uri=uri, mos_raw=float(mos_raw),
                       mos_scale=scale, dataset=dataset, split=split, **extra)


# ------------------------------------------------------------------------------------------------ images

def read_koniq10k(root: Path) -> list[ManifestRow]:
    """KonIQ-10k (Hosu et al. 2020), confirmed: koniq10k_scores_and_distributions.csv with image_name,
    c1..c5, c_total, MOS, SD, MOS_zscore. `MOS` is on the 1-5 ACR scale (MOS_zscore is 0-100). Images in
    1024x768/ (or 512x384/). The official split comes from koniq10k_distributions_sets.csv (`set`:
    training / validation / test) when that file is present."""
    folder = _first_folder(root, "1024x768", "512x384", "images")
    sets = {}
    if (root / "koniq10k_distributions_sets.csv").is_file():
        sets = {r["image_name"]: {"training": "train", "validation": "val"}.get(r["set"], r["set"])
                for r in _read_csv(root / "koniq10k_distributions_sets.csv")}
    return [_row("koniq10k", "image", os.path.join(folder, r["image_name"]), _field(r, "MOS"), (1, 5),
                 sets.get(r["image_name"], "all"))
            for r in _read_csv(root / "koniq10k_scores_and_distributions.csv")]


def read_kadid10k(root: Path) -> list[ManifestRow]:
    """KADID-10k (Lin et al. 2019), confirmed: dmos.csv with dist_img, ref_img, dmos, var; images in
    images/. Despite its name `dmos` is a 1-5 MOS, higher is better. Names are I<ref>_<type>_<level>.png:
    type (25 kinds) and level (1-5) go to `distortion`/`severity`, the reference to `source` so that a
    split by reference content is possible."""
    rows = []
    for r in _read_csv(root / "dmos.csv"):
        parts = Path(r["dist_img"]).stem.split("_")
        rows.append(_row("kadid10k", "image", f"images/{r['dist_img']}", r["dmos"], (1, 5),
                         distortion=parts[1] if len(parts) == 3 else None,
                         severity=int(parts[2]) if len(parts) == 3 else None,
                         source=Path(r["ref_img"]).stem))
    return rows


def read_spaq(root: Path) -> list[ManifestRow]:
    """SPAQ (Fang et al. 2020), confirmed: Annotations/MOS and Image attribute scores.xlsx with
    "Image name", MOS (0-100), Brightness, Colorfulness, Contrast, Noisiness, Sharpness (0-100, kept as
    `aspects`); images in TestImage/. Reading the .xlsx needs openpyxl, or a .csv export beside it."""
    attributes = ("Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness")
    rows = []
    for r in _read_sheet(root / "Annotations" / "MOS and Image attribute scores.xlsx"):
        present = {_key(column) for column in r}
        aspects = {name.lower(): float(_field(r, name)) for name in attributes if _key(name) in present}
        rows.append(_row("spaq", "image", f"TestImage/{_field(r, 'Image name')}", _field(r, "MOS"), (0, 100),
                         aspects=aspects or None))
    return rows


# LIVE Challenge's first 7 entries are the study's training images (Images/trainingImages/), shown to
# raters to calibrate them; the common protocol (HyperIQA, pyiqa) leaves them out, 1162 images remain.
LIVEC_TRAINING_IMAGES = 7


def read_livec(root: Path) -> list[ManifestRow]:
    """LIVE In the Wild Challenge (Ghadiyaram & Bovik 2016), confirmed: Data/AllImages_release.mat
    (cell array `AllImages_release`) and Data/AllMOS_release.mat (`AllMOS_release`, MOS 0-100); images in
    Images/. The first 7 (training) images are excluded."""
    names = _mat_strings(_read_mat(root / "Data" / "AllImages_release.mat")["AllImages_release"])
    mos = np.asarray(_read_mat(root / "Data" / "AllMOS_release.mat")["AllMOS_release"], float).ravel()
    return [_row("livec", "image", f"Images/{name}", value, (0, 100))
            for name, value in list(zip(names, mos))[LIVEC_TRAINING_IMAGES:]]


def read_agiqa3k(root: Path) -> list[ManifestRow]:
    """AGIQA-3K (Li et al. 2023), confirmed columns: data.csv with name, prompt, adj1, adj2, style,
    mos_quality, std_quality, mos_align, std_align. Assumed: mos_quality on a 0-5 scale, images in the
    root or in images/. The prompt alignment score is kept as aspect `alignment` (raw)."""
    folder = _first_folder(root, "images", "AGIQA-3K", "file")
    return [_row("agiqa3k", "image", os.path.join(folder, r["name"]), r["mos_quality"], (0, 5),
                 aspects={"alignment": float(r["mos_align"])} if r.get("mos_align") else None)
            for r in _read_csv(root / "data.csv")]


# ------------------------------------------------------------------------------------------------ videos

LSVQ_LABEL_FILES = (("labels_train_test.csv", None), ("labels_test_1080p.csv", "test_1080p"))
LSVQ_WHOLE_FILES = (("LSVQ_whole_train.csv", "train"), ("LSVQ_whole_test.csv", "test"),
                    ("LSVQ_whole_test_1080p.csv", "test_1080p"))
# Public LSVQ loaders read the tail of labels_train_test.csv as five unnamed columns.
LSVQ_SHORT_ROW = ("name", "height", "width", "mos", "frame_number")


def read_lsvq(root: Path) -> list[ManifestRow]:
    """LSVQ (Ying et al. 2021), confirmed: labels_train_test.csv (+ labels_test_1080p.csv) with name,
    ..., mos (0-100), ... and an `is_test` column giving the split; or the LSVQ_whole_{train,test,test_1080p}.csv
    lists. Videos are <name>.mp4 under the root (name holds the sub-folder, e.g. yfcc-batch1/1234).
    Assumed: rows shorter than the header follow (name, height, width, mos, frame_number); a row with no
    split information gets split "all"."""
    files = LSVQ_LABEL_FILES if (root / LSVQ_LABEL_FILES[0][0]).is_file() else LSVQ_WHOLE_FILES
    rows = []
    for file, fixed_split in files:
        if not (root / file).is_file():
            continue
        with open(root / file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            for values in reader:
                columns = header if len(values) == len(header) else LSVQ_SHORT_ROW
                record = dict(zip(columns, values))
                split = fixed_split or {"true": "test", "1": "test", "false": "train", "0": "train"}.get(
                    str(record.get("is_test", "")).strip().lower(), "all")
                name = record["name"]
                uri = name if name.endswith(VIDEO_SUFFIXES) else f"{name}.mp4"
                rows.append(_row("lsvq", "video", uri, record["mos"], (0, 100), split))
    return rows


def read_konvid1k(root: Path) -> list[ManifestRow]:
    """KoNViD-1k (Hosu et al. 2017), confirmed: KoNViD_1k_mos.csv with flickr_id, mos (1-5); videos
    <flickr_id>.mp4 in KoNViD_1k_videos/."""
    folder = _first_folder(root, "KoNViD_1k_videos", "videos")
    return [_row("konvid1k", "video", os.path.join(folder, f"{_field(r, 'flickr_id')}.mp4"), _field(r, "mos"),
                 (1, 5)) for r in _read_csv(root / "KoNViD_1k_mos.csv")]


def read_livevqc(root: Path) -> list[ManifestRow]:
    """LIVE-VQC (Sinno & Bovik 2018), confirmed: data.mat with `video_list` (cell array of file names)
    and `mos` (0-100); videos in Video/."""
    data = _read_mat(root / "data.mat")
    names = _mat_strings(data["video_list"])
    mos = np.asarray(data["mos"], float).ravel()
    return [_row("livevqc", "video", f"Video/{name}", value, (0, 100)) for name, value in zip(names, mos)]


def read_youtube_ugc(root: Path) -> list[ManifestRow]:
    """YouTube-UGC (Wang et al. 2019), partly confirmed: original_videos_MOS_for_YouTube_UGC_dataset.xlsx
    with `vid` and `MOS full` (1-5); per-chunk MOS columns are ignored. Assumed: each video file is named
    <vid>.<ext> somewhere under the root (the release nests them by category and resolution), so files
    are found by name. Reading the .xlsx needs openpyxl, or a .csv export beside it."""
    files = {path.stem: path.relative_to(root).as_posix() for path in sorted(root.rglob("*"))
             if path.suffix.lower() in VIDEO_SUFFIXES}
    rows = []
    for r in _read_sheet(root / "original_videos_MOS_for_YouTube_UGC_dataset.xlsx"):
        vid = str(_field(r, "vid"))
        rows.append(_row("youtube_ugc", "video", files.get(vid, f"{vid}.mkv"), _field(r, "MOS full"), (1, 5)))
    return rows


FORMATS: dict[str, Callable[[Path], list[ManifestRow]]] = {
    "koniq10k": read_koniq10k, "kadid10k": read_kadid10k, "spaq": read_spaq, "livec": read_livec,
    "agiqa3k": read_agiqa3k, "lsvq": read_lsvq, "konvid1k": read_konvid1k, "livevqc": read_livevqc,
    "youtube_ugc": read_youtube_ugc,
}


@dataclass(frozen=True)
class ImportResult:
    out_path: Path
    rows: int
    missing_media: int  # rows whose file is not on disk (the manifest keeps them; `data check` names them)


def import_dataset(format: str, root: str | Path, out_path: str | Path) -> ImportResult:
    """Read dataset `format` (one of FORMATS) from folder `root`; write a manifest at `out_path`."""
    if format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; known: {', '.join(sorted(FORMATS))}")
    root, out_path = Path(root).resolve(), Path(out_path).resolve()
    rows = FORMATS[format](root)
    missing = 0
    for row in rows:
        media = root / row.uri
        missing += not media.is_file()
        row.uri = Path(os.path.relpath(media, out_path.parent)).as_posix()
    write_manifest(rows, out_path)
    return ImportResult(out_path, len(rows), missing)
