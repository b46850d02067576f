"""Images and videos load as the model needs them, and every bad file fails with a typed reason."""

import io

import numpy as np
import pytest
from PIL import Image

from rollout.images import load_image
from rollout.media import MediaError, MediaFailure, fit_size
from rollout.video import encode_video, load_video, sample_indices

from media_samples import jpeg_bytes, moving_frames, png_declaring


def reason_of(call) -> MediaFailure:
    with pytest.raises(MediaError) as caught:
        call()
    return caught.value.reason


def test_image_from_path_and_bytes_is_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (40, 30), 128).save(path)
    for source in (path, path.read_bytes()):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)


def test_image_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 10, 10)).save(buffer, "JPEG", exif=exif)
    assert load_image(buffer.getvalue()).size == (20, 40)


def test_image_is_shrunk_keeping_aspect():
    image = load_image(jpeg_bytes(64, 48), max_side=32)
    assert image.size == (32, 24)
    assert fit_size(640, 480, max_pixels=640 * 480 // 4) == (320, 240)
    assert fit_size(10, 10, max_side=100) == (10, 10)


def test_image_failures_have_reasons(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not an image")
    truncated = jpeg_bytes()[:300]
    assert reason_of(lambda: load_image(tmp_path / "absent.jpg")) is MediaFailure.MISSING
    assert reason_of(lambda: load_image(tmp_path / "empty.jpg")) is MediaFailure.EMPTY
    assert reason_of(lambda: load_image(b"")) is MediaFailure.EMPTY
    assert reason_of(lambda: load_image(tmp_path / "text.png")) is MediaFailure.NOT_IMAGE
    assert reason_of(lambda: load_image(truncated)) is MediaFailure.TRUNCATED
    assert reason_of(lambda: load_image(png_declaring(30000, 30000))) is MediaFailure.TOO_LARGE
    # Below PIL's own bomb limit, the guard still refuses from the header alone.
    assert reason_of(lambda: load_image(png_declaring(5000, 5000), max_source_pixels=1000)) \
        is MediaFailure.TOO_LARGE


def test_uniform_and_fps_sampling_indices():
    assert sample_indices(30, 10.0, num_frames=4).tolist() == [0, 10, 19, 29]
    assert sample_indices(3, 10.0, num_frames=5).tolist() == [0, 0, 1, 2, 2]
    assert len(sample_indices(300, 30.0, fps=2.0, max_frames=32)) == 20
    assert len(sample_indices(3000, 30.0, fps=2.0, max_frames=32)) == 32
    with pytest.raises(ValueError):
        sample_indices(10, 10.0)


def test_video_decodes_sampled_frames_with_vllm_metadata(tmp_path):
    path = tmp_path / "ramp.mp4"
    encode_video(moving_frames(), path, fps=10, crf=10)
    clip = load_video(path, num_frames=5)
    assert clip.frames.shape == (5, 48, 64, 3) and clip.frames.dtype == np.uint8
    meta = clip.metadata
    assert meta["total_num_frames"] == 20 and meta["fps"] == pytest.approx(10.0)
    assert meta["duration"] == pytest.approx(2.0)
    assert meta["frames_indices"] == [0, 5, 10, 14, 19]
    assert meta["video_backend"] == "opencv" and meta["do_sample_frames"] is False
    brightness = clip.frames.reshape(5, -1).mean(axis=1)
    assert np.allclose(brightness, [10 + 12 * i for i in meta["frames_indices"]], atol=4)
    frames, metadata = clip.vllm_input()
    assert frames is clip.frames and metadata is meta


def test_video_from_bytes_by_fps_and_resized(tmp_path):
    path = tmp_path / "ramp.mp4"
    encode_video(moving_frames(count=20, height=96, width=128), path, fps=10)
    clip = load_video(path.read_bytes(), fps=2.0, max_side=64)
    assert clip.frames.shape == (4, 48, 64, 3)


def test_video_failures_have_reasons(tmp_path):
    path = tmp_path / "ok.mp4"
    encode_video(moving_frames(), path, fps=10)
    data = path.read_bytes()
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "still.mp4").write_bytes(jpeg_bytes())
    assert reason_of(lambda: load_video(tmp_path / "absent.mp4")) is MediaFailure.MISSING
    assert reason_of(lambda: load_video(tmp_path / "zero.mp4")) is MediaFailure.EMPTY
    assert reason_of(lambda: load_video(tmp_path / "cut.mp4")) is MediaFailure.TRUNCATED
    assert reason_of(lambda: load_video(tmp_path / "text.mp4")) is MediaFailure.NOT_VIDEO
    assert reason_of(lambda: load_video(tmp_path / "still.mp4")) is MediaFailure.NOT_VIDEO
    assert reason_of(lambda: load_video(path, max_source_pixels=100)) is MediaFailure.TOO_LARGE


@pytest.mark.parametrize("width", [32, 96])
def test_widths_decord_cannot_copy_are_decoded_anyway(tmp_path, width):
    """decord fails on some native widths (dmlc/decord#336); the same frames come back through PyAV."""
    path = tmp_path / "narrow.mp4"
    encode_video(moving_frames(count=10, height=32, width=width), path, fps=10, crf=10)
    clip = load_video(path, num_frames=4)
    assert clip.frames.shape == (4, 32, width, 3)
    brightness = clip.frames.reshape(4, -1).mean(axis=1)
    assert np.allclose(brightness, [10 + 12 * i for i in clip.metadata["frames_indices"]], atol=4)
