"""Images from a path or bytes: RGB, EXIF orientation applied, decompression bombs refused up front.

PIL's `Image.open` parses only the header (pixels are decoded lazily), so the declared size is checked
against `max_source_pixels` before a single pixel is decoded; a PNG that declares 30000 x 30000 costs a
few bytes of reading, not 2.7 GB of memory. Phone photos carry their rotation in EXIF (SPAQ, KonIQ's
Flickr sources); applying it is what a human rater saw.
"""

from __future__ import annotations

import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from rollout import media


def load_image(source: media.MediaSource, max_side: int | None = None, max_pixels: int | None = None,
               max_source_pixels: int = media.DEFAULT_MAX_SOURCE_PIXELS) -> Image.Image:
    """Decode an image to RGB, EXIF-transposed, optionally shrunk (aspect kept) to fit the limits.

    Raises `MediaError` (missing, empty, not_image, too_large, truncated, unreadable) for every failure.
    """
    name = media.describe_source(source)
    opened = media.open_source(source)
    with warnings.catch_warnings():
        # PIL warns (then raises) past its own bomb limit; ours is lower and checked first, but a
        # header between the two limits must not print a warning per file.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(opened)
        except Image.DecompressionBombError as error:
            raise media.MediaError(media.MediaFailure.TOO_LARGE, name, str(error)) from None
        except UnidentifiedImageError:
            raise media.MediaError(media.MediaFailure.NOT_IMAGE, name) from None
        except (OSError, SyntaxError, ValueError) as error:
            raise _decoder_failure(error, name) from None
        with image:
            media.check_source_pixels(image.width, image.height, max_source_pixels, name)
            rgb = _decode_rgb(image, name)
    if max_side is not None or max_pixels is not None:
        size = media.fit_size(rgb.width, rgb.height, max_side, max_pixels)
        if size != rgb.size:
            rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return rgb


def _decode_rgb(image: Image.Image, name: str) -> Image.Image:
    try:
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise _decoder_failure(error, name) from None


def _decoder_failure(error: Exception, name: str) -> media.MediaError:
    """A file that ends early (PIL: "image file is truncated", "Truncated File Read", "broken data
    stream") is `truncated`; any other decoder complaint is `unreadable`."""
    message = str(error).lower()
    truncated = isinstance(error, OSError) and ("truncated" in message or "broken" in message)
    reason = media.MediaFailure.TRUNCATED if truncated else media.MediaFailure.UNREADABLE
    return media.MediaError(reason, name, str(error))
