"""Small media files built in memory for the rollout tests (imported by the test modules beside it)."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def png_declaring(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched to declare another size (CRC recomputed)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_bytes(width=64, height=48) -> bytes:
    buffer = io.BytesIO()
    gradient = np.linspace(0, 255, width * height * 3).reshape(height, width, 3).astype(np.uint8)
    Image.fromarray(gradient).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def moving_frames(count=20, height=48, width=64) -> np.ndarray:
    """Frames whose mean brightness encodes their index, so sampled indices can be checked after decoding."""
    return np.stack([np.full((height, width, 3), 10 + 12 * i, dtype=np.uint8) for i in range(count)])
