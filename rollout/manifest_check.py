"""`qthink data check`: open every row's media of a manifest and report what a training run would meet.

The report lists counts, MOS statistics and every unreadable row with its reason, so a user learns about
a truncated download before a GRPO run skips it at step 10 000. Strict mode (the CLI's `--strict`) fails
when `report.unreadable` is not empty.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rollout.manifest import ManifestFile, MediaOptions, load_media
from rollout.media import MediaError

# Checking decodes a few frames spread over the whole video (the last one included), which finds files
# cut short without paying for a full decode.
CHECK_OPTIONS = MediaOptions(video_num_frames=4)


@dataclass(frozen=True)
class UnreadableRow:
    index: int
    id: str
    location: str
    reason: str
    detail: str


@dataclass
class ManifestReport:
    path: str
    rows: int
    media_types: dict[str, int]
    datasets: dict[str, int]
    splits: dict[str, int]
    mos: dict[str, float]
    unreadable: list[UnreadableRow] = field(default_factory=list)

    @property
    def unreadable_reasons(self) -> dict[str, int]:
        return dict(collections.Counter(row.reason for row in self.unreadable))


def check_manifest(path: str | Path, options: MediaOptions = CHECK_OPTIONS) -> ManifestReport:
    """Open every row's media; never raises for bad media (only for a file that is not a manifest)."""
    manifest = ManifestFile(path)
    rows = manifest.rows
    mos = np.array([row.mos for row in rows], dtype=np.float64)
    report = ManifestReport(
        path=str(path), rows=len(rows),
        media_types=dict(collections.Counter(row.media_type for row in rows)),
        datasets=dict(collections.Counter(row.dataset for row in rows)),
        splits=dict(collections.Counter(row.split for row in rows)),
        mos={"min": float(mos.min()), "max": float(mos.max()), "mean": float(mos.mean()),
             "std": float(mos.std())} if len(rows) else {})
    for index, row in enumerate(rows):
        try:
            load_media(row, manifest.media_source(index), options)
        except MediaError as error:
            report.unreadable.append(UnreadableRow(index, row.id, row.location(), error.reason.value,
                                                   error.detail))
    return report


def format_report(report: ManifestReport) -> str:
    """The report as the CLI prints it."""
    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted(mapping.items())) or "-"

    lines = [f"manifest {report.path}: {report.rows} rows",
             f"  media:    {counts(report.media_types)}",
             f"  datasets: {counts(report.datasets)}",
             f"  splits:   {counts(report.splits)}"]
    if report.mos:
        lines.append("  mos [1-5]: min {min:.3f}  max {max:.3f}  mean {mean:.3f}  std {std:.3f}".format(**report.mos))
    lines.append(f"  unreadable: {len(report.unreadable)}"
                 + (f" ({counts(report.unreadable_reasons)})" if report.unreadable else ""))
    for row in report.unreadable:
        lines.append(f"    row {row.index} id={row.id} {row.location}: {row.reason}"
                     + (f" — {row.detail}" if row.detail else ""))
    return "\n".join(lines)
