"""Videos through decord: uniform N frames or frames at a target fps, resized keeping aspect.

The result is what vLLM's Qwen2.5-VL video input takes (docs/design.md, "Environment notes"):
`{"video": (frames_uint8[T, H, W, 3], metadata)}` with `do_sample_frames=False`, because the frames are
already sampled here — once — and the temporal perturbations of VQAThinker work on these decoded frames
instead of decoding the file again. `fps` in the metadata is the SOURCE frame rate and
`frames_indices` index the source timeline, so `frames_indices / fps` are the sampled timestamps.

The header is probed with PyAV before decord opens the file: a file with no video stream, a still
image, or an absurd resolution is refused without decoding a frame. Decord then decodes only the
sampled frames, already scaled to the target size (its `width`/`height` arguments).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np

from rollout.media import (
    DEFAULT_MAX_SOURCE_PIXELS,
    MediaError,
    MediaFailure,
    MediaSource,
    check_source_pixels,
    describe_source,
    fit_size,
    open_source,
)


@dataclass(frozen=True)
class VideoClip:
    """Sampled frames [T, H, W, 3] uint8 and the metadata vLLM needs to place them in time."""

    frames: np.ndarray
    metadata: dict

    def vllm_input(self) -> tuple[np.ndarray, dict]:
        """The value of `multi_modal_data["video"]` for one prompt."""
        return self.frames, self.metadata


def sample_indices(total_frames: int, source_fps: float, num_frames: int | None = None,
                   fps: float | None = None, max_frames: int = 32) -> np.ndarray:
    """Frame indices spread evenly over the whole video, first and last frame included.

    Give `num_frames` for a fixed count (repeats appear when the video is shorter, so T stays fixed
    for batching), or `fps` for a count proportional to the duration; both are capped at `max_frames`.
    """
    if (num_frames is None) == (fps is None):
        raise ValueError("give exactly one of num_frames or fps")
    if num_frames is not None:
        count = num_frames
    else:
        duration = total_frames / source_fps if source_fps > 0 else 0.0
        count = max(1, round(duration * fps))
    count = max(1, min(count, max_frames))
    return np.linspace(0, total_frames - 1, count).round().astype(np.int64)


def load_video(source: MediaSource, num_frames: int | None = 8, fps: float | None = None,
               max_frames: int = 32, max_side: int | None = None, max_pixels: int | None = None,
               max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS, decode_threads: int = 1) -> VideoClip:
    """Decode sampled frames of a video file (path or bytes) as a `VideoClip`.

    Frames: `num_frames` uniformly, or — when `fps` is given, which wins — `fps` per second of video,
    both capped at `max_frames` (see `sample_indices`). `max_side` / `max_pixels` bound one frame (aspect
    kept, sides even). Raises `MediaError` (missing, empty, not_video, too_large, truncated, unreadable)
    for every failure.
    """
    if fps is not None:
        num_frames = None
    name = describe_source(source)
    opened = open_source(source)
    width, height = _probe_size(_rewound(opened), name)
    check_source_pixels(width, height, max_source_pixels, name)
    out_w, out_h = fit_size(width, height, max_side, max_pixels, multiple=2)
    try:
        reader = decord.VideoReader(_rewound(opened), ctx=decord.cpu(0), num_threads=decode_threads,
                                    width=out_w if out_w != width else -1,
                                    height=out_h if out_h != height else -1)
    except (decord.DECORDError, RuntimeError) as error:
        raise MediaError(MediaFailure.UNREADABLE, name, str(error).splitlines()[0]) from None
    total = len(reader)
    source_fps = float(reader.get_avg_fps())
    if total == 0:
        raise MediaError(MediaFailure.TRUNCATED, name, "no decodable frames")
    indices = sample_indices(total, source_fps, num_frames, fps, max_frames)
    try:
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as error:
        if DECORD_STRIDE_BUG not in str(error):
            raise MediaError(MediaFailure.TRUNCATED, name, str(error).splitlines()[0]) from None
        frames = _decode_with_pyav(opened, indices, out_w, out_h, name)
    metadata = {
        "fps": source_fps,
        "duration": total / source_fps if source_fps > 0 else 0.0,
        "total_num_frames": total,
        "frames_indices": indices.tolist(),
        "video_backend": "opencv",
        "do_sample_frames": False,
    }
    return VideoClip(np.ascontiguousarray(frames, dtype=np.uint8), metadata)


def _rewound(opened: str | io.BytesIO) -> str | io.BytesIO:
    """A fresh handle on the same source (each reader consumes the buffer it is given)."""
    return io.BytesIO(opened.getvalue()) if isinstance(opened, io.BytesIO) else opened


# decord (dmlc/decord#336, open) fails to copy frames decoded at their native size for some widths
# (16, 32, 48, 96, 144 px among multiples of 16; measured with decord2 3.4.0), with this message.
# Those files are decoded with PyAV instead: sequentially, slower, same frames.
DECORD_STRIDE_BUG = "DECORDArrayCopyFromTo"


def _decode_with_pyav(opened: str | io.BytesIO, indices: np.ndarray, width: int, height: int,
                      name: str) -> np.ndarray:
    wanted = set(indices.tolist())
    decoded = {}
    try:
        with av.open(_rewound(opened)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    decoded[index] = frame.to_ndarray(width=width, height=height, format="rgb24")
                if index >= indices.max():
                    break
    except av.FFmpegError as error:
        raise MediaError(MediaFailure.TRUNCATED, name, str(error)) from None
    if len(decoded) < len(wanted):
        raise MediaError(MediaFailure.TRUNCATED, name, f"{len(decoded)} of {len(wanted)} sampled frames decoded")
    return np.stack([decoded[index] for index in indices.tolist()])


def _probe_size(opened: str | io.BytesIO, name: str) -> tuple[int, int]:
    """Width and height from the container header; not_video for anything without a real video stream."""
    try:
        with av.open(opened) as container:
            # ffmpeg happily opens a PNG or JPEG as a one-frame "video" (png_pipe, image2, ...).
            if not container.streams.video or container.format.name.endswith("_pipe") \
                    or container.format.name == "image2":
                raise MediaError(MediaFailure.NOT_VIDEO, name, f"container {container.format.name}")
            context = container.streams.video[0].codec_context
            width, height = context.width, context.height
    except av.FFmpegError as error:
        reason = MediaFailure.TRUNCATED if _has_video_signature(opened) else MediaFailure.NOT_VIDEO
        raise MediaError(reason, name, str(error)) from None
    if width <= 0 or height <= 0:
        raise MediaError(MediaFailure.UNREADABLE, name, "stream declares no frame size")
    return width, height


# Leading bytes of the common video containers: MP4/MOV ("ftyp" at offset 4), Matroska/WebM, AVI, FLV.
_VIDEO_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (8, b"AVI "), (0, b"FLV"))


def _has_video_signature(opened: str | io.BytesIO) -> bool:
    """True when a file that ffmpeg could not parse still starts like a video container: it was cut short
    (an MP4 whose index, the "moov" atom, never got written), rather than being some other kind of file."""
    if isinstance(opened, io.BytesIO):
        head = opened.getvalue()[:12]
    else:
        with open(opened, "rb") as handle:
            head = handle.read(12)
    return any(head[offset:offset + len(magic)] == magic for offset, magic in _VIDEO_SIGNATURES)


def encode_video(frames: np.ndarray, path: str | Path, fps: float = 8.0, crf: int = 23) -> None:
    """Write RGB frames [T, H, W, 3] (even H and W) as an H.264 MP4 at constant quality `crf` (0-51:
    higher is smaller and worse).

    The bytes are not reproducible: libx264 here (PyAV 18 wheels) occasionally encodes the same frames
    differently from run to run, even single-threaded (measured: 1-40% of repeats, more under CPU load).
    The decoded pictures differ only by encoder noise.
    """
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.codec_context.thread_count = 1  # callers share few cores (tests, the synthetic build)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
