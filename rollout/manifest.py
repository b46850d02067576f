"""Dataset manifests: one parquet file per dataset split, one row per image or video with its MOS.

Every dataset qthink trains or evaluates on — KonIQ, KADID, LSVQ, the synthetic benchmark — is turned into
this one schema by the importers, so the rest of the system reads one thing. Columns:

| column       | type                        | meaning                                                   |
|--------------|-----------------------------|-----------------------------------------------------------|
| id           | string                      | unique within the manifest                                |
| media_type   | string                      | "image" or "video"                                        |
| uri          | string, nullable            | media path, relative to the manifest's folder (or absolute)|
| media_bytes  | binary, nullable            | the media itself, inline (exactly one of uri / media_bytes)|
| mos_raw      | float64                     | the dataset's published score                             |
| mos_scale    | struct<lo, hi: float64>     | published scale; lo maps to 1, hi to 5 (lo > hi: a DMOS)  |
| mos          | float64                     | MOS rescaled to [1, 5] — what rewards and metrics use     |
| dataset      | string                      | e.g. "koniq10k"; metrics are reported per dataset         |
| split        | string                      | "train", "test", "all", ...                               |
| reasoning    | string, nullable            | SFT target text (Q-Ponder's cold start)                   |
| aspects      | map<string, float64>, nullable | aspect scores (SPAQ attributes, PreResQ-R1's five aspects) |
| distortion   | string, nullable            | synthetic set: the distortion applied                     |
| severity     | int32, nullable             | synthetic set: its level, 1-5 (0: the pristine crop)      |
| source       | string, nullable            | synthetic set: the source picture or scene                |

The reader loads every column but `media_bytes` up front (a few hundred bytes per row) and fetches inline
media one row group at a time, so a manifest with inline videos streams instead of filling memory.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rollout.images import load_image
from rollout.media import DEFAULT_MAX_SOURCE_PIXELS, MediaError
from rollout.video import VideoClip, load_video

MEDIA_TYPES = ("image", "video")

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("media_type", pa.string()),
    ("uri", pa.string()),
    ("media_bytes", pa.binary()),
    ("mos_raw", pa.float64()),
    ("mos_scale", pa.struct([("lo", pa.float64()), ("hi", pa.float64())])),
    ("mos", pa.float64()),
    ("dataset", pa.string()),
    ("split", pa.string()),
    ("reasoning", pa.string()),
    ("aspects", pa.map_(pa.string(), pa.float64())),
    ("distortion", pa.string()),
    ("severity", pa.int32()),
    ("source", pa.string()),
])


def rescale_mos(raw: float, lo: float, hi: float) -> float:
    """Map a score on the published scale [lo, hi] linearly onto [1, 5] (lo -> 1, hi -> 5)."""
    return 1.0 + 4.0 * (raw - lo) / (hi - lo)


@dataclass
class ManifestRow:
    """One manifest row; `mos` is derived from `mos_raw` and `mos_scale` when not given.

    Rows read back from a file carry `media_bytes=None`: inline media stay on disk until
    `ManifestFile.media_source` fetches them.
    """

    id: str
    media_type: str
    mos_raw: float
    mos_scale: tuple[float, float]
    dataset: str
    split: str
    uri: str | None = None
    media_bytes: bytes | None = None
    mos: float | None = None
    reasoning: str | None = None
    aspects: dict[str, float] | None = None
    distortion: str | None = None
    severity: int | None = None
    source: str | None = None

    def __post_init__(self):
        if self.media_type not in MEDIA_TYPES:
            raise ValueError(f"row {self.id}: media_type must be one of {MEDIA_TYPES}, not {self.media_type!r}")
        lo, hi = (float(v) for v in self.mos_scale)
        if lo == hi:
            raise ValueError(f"row {self.id}: empty MOS scale ({lo}, {hi})")
        self.mos_scale = (lo, hi)
        if self.mos is None:
            self.mos = rescale_mos(float(self.mos_raw), lo, hi)
        if not 1.0 - 1e-9 <= self.mos <= 5.0 + 1e-9:
            raise ValueError(f"row {self.id}: MOS {self.mos_raw} lies outside its scale ({lo}, {hi})")

    def location(self) -> str:
        """Where the media is, for reports."""
        return self.uri if self.uri is not None else "<inline bytes>"


def write_manifest(rows: Iterable[ManifestRow], path: str | Path, row_group_size: int = 64) -> int:
    """Write rows as a parquet manifest; returns the row count. Ids must be unique.

    Small row groups keep the reader's inline-media fetches small.
    """
    records = []
    for row in rows:
        if (row.uri is None) == (row.media_bytes is None):
            raise ValueError(f"row {row.id}: give exactly one of uri or media_bytes")
        record = asdict(row)
        record["mos_scale"] = {"lo": row.mos_scale[0], "hi": row.mos_scale[1]}
        records.append(record)
    ids = [record["id"] for record in records]
    if len(set(ids)) != len(ids):
        duplicates = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
        raise ValueError(f"duplicate ids in manifest: {duplicates[:5]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")  # a killed writer leaves no file that looks complete
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), str(partial), row_group_size=row_group_size)
    os.replace(partial, path)
    return len(records)


def _row_from_record(record: dict) -> ManifestRow:
    record = dict(record)
    record["mos_scale"] = (record["mos_scale"]["lo"], record["mos_scale"]["hi"])
    if record["aspects"] is not None:
        record["aspects"] = dict(record["aspects"])
    return ManifestRow(**record, media_bytes=None)


class ManifestFile:
    """A manifest on disk: its rows without inline media, and media fetched one row group at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.folder = self.path.parent
        self._file = pq.ParquetFile(str(self.path))
        missing = set(SCHEMA.names) - set(self._file.schema_arrow.names)
        if missing:
            raise ValueError(f"{self.path}: not a qthink manifest, missing columns {sorted(missing)}")
        columns = [name for name in SCHEMA.names if name != "media_bytes"]
        self.rows = [_row_from_record(record) for record in self._file.read(columns=columns).to_pylist()]
        self._group_starts = np.cumsum([0] + [self._file.metadata.row_group(g).num_rows
                                              for g in range(self._file.num_row_groups)])
        self._cached_group: tuple[int, list] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def media_source(self, index: int) -> str | bytes:
        """The path (resolved against the manifest's folder) or the inline bytes of row `index`."""
        if self.rows[index].uri is not None:
            return str(self.folder / self.rows[index].uri)
        group = int(np.searchsorted(self._group_starts, index, side="right") - 1)
        if self._cached_group is None or self._cached_group[0] != group:
            blobs = self._file.read_row_group(group, columns=["media_bytes"]).column(0).to_pylist()
            self._cached_group = (group, blobs)
        return self._cached_group[1][index - self._group_starts[group]]

    def relocated_row(self, index: int, out_dir: Path) -> ManifestRow:
        """Row `index` for a manifest written in `out_dir`: its path made relative to there, or its media
        inline when it had no path."""
        row = self.rows[index]
        if row.uri is None:
            return dataclasses.replace(row, media_bytes=self.media_source(index))
        source = row.uri if os.path.isabs(row.uri) else str(self.folder / row.uri)
        return dataclasses.replace(row, uri=os.path.relpath(source, out_dir))


@dataclass(frozen=True)
class MediaOptions:
    """How media are decoded for the model: image size limits and video frame sampling."""

    image_max_side: int | None = None
    image_max_pixels: int | None = None
    video_num_frames: int | None = 8
    video_fps: float | None = None
    video_max_frames: int = 32
    video_max_side: int | None = None
    video_max_pixels: int | None = None
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS


def load_media(row: ManifestRow, source: str | bytes, options: MediaOptions) -> Image.Image | VideoClip:
    """Decode one row's media; raises `MediaError` when it cannot be used."""
    if row.media_type == "image":
        return load_image(source, options.image_max_side, options.image_max_pixels, options.max_source_pixels)
    return load_video(source, num_frames=options.video_num_frames, fps=options.video_fps,
                      max_frames=options.video_max_frames, max_side=options.video_max_side,
                      max_pixels=options.video_max_pixels, max_source_pixels=options.max_source_pixels)


@dataclass(frozen=True)
class Sample:
    """A usable row and its decoded media (a PIL image or a `VideoClip`)."""

    row: ManifestRow
    media: Image.Image | VideoClip


class ManifestReader:
    """Streams decoded samples, reshuffled every epoch, with a resumable (epoch, position) cursor.

    The order of epoch e is a permutation drawn from (seed, e) alone, so restoring `state_dict()` in a new
    process continues with exactly the rows that would have come next. Rows whose media cannot be used
    are skipped and counted by reason (`skip_counts`, `skipped_rows`) — never raised, never silent.
    """

    def __init__(self, path: str | Path, seed: int = 0, shuffle: bool = True,
                 options: MediaOptions = MediaOptions()):
        self.manifest = ManifestFile(path)
        self.seed = seed
        self.shuffle = shuffle
        self.options = options
        self.epoch = 0
        self.position = 0
        self.skip_counts: collections.Counter[str] = collections.Counter()
        self.skipped_rows: dict[str, tuple[str, str]] = {}

    @property
    def skipped(self) -> int:
        """How many times a row was skipped (a bad row counts once per epoch it was met in)."""
        return sum(self.skip_counts.values())

    def order(self, epoch: int) -> np.ndarray:
        """Row indices in the order epoch `epoch` visits them."""
        if not self.shuffle:
            return np.arange(len(self.manifest))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.manifest))

    def iter_epoch(self) -> Iterator[Sample]:
        """The usable samples from the cursor to the end of the current epoch; then the cursor moves on."""
        for index, row in self.rows_of_epoch():
            try:
                media = load_media(row, self.manifest.media_source(index), self.options)
            except MediaError as error:
                self.record_skip(row, error.reason.value, error.detail)
                continue
            yield Sample(row, media)

    def rows_of_epoch(self) -> Iterator[tuple[int, ManifestRow]]:
        """(index, row) from the cursor to the end of the current epoch, the cursor moving past each as it is
        handed out; then on to the next epoch. For callers that decode elsewhere (and `record_skip`)."""
        order = self.order(self.epoch)
        while self.position < len(order):
            index = int(order[self.position])
            self.position += 1
            yield index, self.manifest.rows[index]
        self.epoch += 1
        self.position = 0

    def record_skip(self, row: ManifestRow, reason: str, detail: str) -> None:
        self.skip_counts[reason] += 1
        self.skipped_rows[row.id] = (reason, detail)

    def __iter__(self) -> Iterator[Sample]:
        """Samples forever, epoch after epoch; stops only if a whole epoch had nothing usable."""
        while True:
            produced = False
            for sample in self.iter_epoch():
                produced = True
                yield sample
            if not produced:
                return

    def state_dict(self) -> dict:
        return {"seed": self.seed, "shuffle": self.shuffle, "epoch": self.epoch, "position": self.position,
                "skip_counts": dict(self.skip_counts),
                "skipped_rows": {key: list(value) for key, value in self.skipped_rows.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.shuffle = state["seed"], state["shuffle"]
        self.epoch, self.position = state["epoch"], state["position"]
        self.skip_counts = collections.Counter(state["skip_counts"])
        self.skipped_rows = {key: tuple(value) for key, value in state["skipped_rows"].items()}
