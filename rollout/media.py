"""What every media loader shares: one typed error, source checks, and the aspect-keeping resize rule.

A training run reads tens of thousands of user files; some are missing, zero bytes, cut short, of the
wrong type or absurdly large (docs/design.md, "Bad input and faults"). Every loader in rollout/ turns each
of those into a `MediaError` carrying a `MediaFailure` reason, so the manifest reader can skip and count
them by reason and `qthink data check` can name them — never a crash, never a silent drop.
"""

from __future__ import annotations

import enum
import io
import math
import os
from pathlib import Path
from typing import Union

MediaSource = Union[str, os.PathLike, bytes]

# 8192 x 8192. Real IQA/VQA sets top out near 4K (SPAQ's phone photos are ~4000 x 3000 = 12 MP); a
# header above this is a decompression bomb or a corrupt file, and is refused before any decoding.
DEFAULT_MAX_SOURCE_PIXELS = 8192 * 8192


class MediaFailure(str, enum.Enum):
    """Why a media file could not be used; the value is what reports and counters print."""

    MISSING = "missing"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    NOT_IMAGE = "not_image"
    NOT_VIDEO = "not_video"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"


class MediaError(Exception):
    """A media file that cannot be used, with the reason and the source it came from."""

    def __init__(self, reason: MediaFailure, source: str, detail: str = ""):
        self.reason = MediaFailure(reason)
        self.source = source
        self.detail = detail
        super().__init__(f"{self.reason.value}: {source}" + (f" ({detail})" if detail else ""))


def describe_source(source: MediaSource) -> str:
    """A short printable name for a path or an in-memory blob."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(source)


def open_source(source: MediaSource) -> Union[str, io.BytesIO]:
    """Check that a source exists and is non-empty; return a path string or a seekable buffer.

    The checks come first so that "missing" and "empty" are reported as such instead of as whatever
    a decoder happens to say about a file it could not parse.
    """
    name = describe_source(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError(MediaFailure.EMPTY, name)
        return io.BytesIO(bytes(source))
    path = Path(source)
    if not path.is_file():
        raise MediaError(MediaFailure.MISSING, name)
    if path.stat().st_size == 0:
        raise MediaError(MediaFailure.EMPTY, name)
    return str(path)


def check_source_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    """Refuse a declared size above the limit (checked from the header, before decoding)."""
    if width * height > max_pixels:
        raise MediaError(MediaFailure.TOO_LARGE, name, f"{width}x{height} > {max_pixels} pixels")


def fit_size(width: int, height: int, max_side: int | None = None, max_pixels: int | None = None,
             multiple: int = 1) -> tuple[int, int]:
    """The largest (width, height) with the same aspect ratio within `max_side` and `max_pixels`.

    Never upscales. `multiple` rounds both sides down to a multiple (video encoders and yuv420 need
    even sides); every side stays at least `multiple`.
    """
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(width, height))
    if max_pixels is not None:
        scale = min(scale, math.sqrt(max_pixels / (width * height)))
    new_w = max(multiple, int(width * scale) // multiple * multiple)
    new_h = max(multiple, int(height * scale) // multiple * multiple)
    return new_w, new_h
