"""One image source (a file path, encoded bytes, an array or a Pillow image) decoded to uint8
(C, H, W) pixels: the conversion rules of the image cache (:mod:`labelemb.data.image_cache`).

What a source becomes (:func:`decode_image`):

- channels: grayscale (``L``), RGB, palette, 1-bit, CMYK, ... are converted with Pillow's
  ``convert``; 16-bit grayscale (``I;16``, and ``I``, read as 16-bit) is scaled to 8 bits
  (``round(v * 255 / 65535)``), not clipped; an alpha channel (RGBA, LA, a palette or a colour
  with a transparent entry) is composited on black, i.e. each value is multiplied by alpha / 255,
  so a transparent pixel is black whatever colour it stores.
- size: resized with Pillow's bilinear filter (which widens its support when shrinking, so it
  averages like an area filter); an image that already has the size keeps its exact pixels.
  A JPEG at least twice the size is decoded at a reduced scale first (Pillow's ``draft``), which
  keeps a huge photo's memory small.
- arrays (H, W) or (H, W, C) with C in 1..4: uint8 as is, bool as 0/255, uint16 scaled like
  16-bit images, other integers must lie in 0..255, floats in [0, 1] (scaled by 255, rounded).
- size limit: Pillow's decompression-bomb guard stays on. An image above twice
  ``PIL.Image.MAX_IMAGE_PIXELS`` (about 179 megapixels, e.g. 13,000 x 13,000) is refused with a
  DataError naming it; below that it is decoded (Pillow warns above the limit itself), one image at
  a time, so a 6000 x 6000 image costs about 100 MB while it is being resized.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .base import DataError

if TYPE_CHECKING:
    from PIL import Image

    ImageSource = str | os.PathLike[str] | bytes | np.ndarray | Image.Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_GRAY_MODES = ("1", "L", "LA", "La", "F", *_SIXTEEN_BIT_MODES)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@functools.cache
def pillow() -> ModuleType:
    """PIL.Image, imported on first use: importing labelemb.data should not pay for it (50 ms)."""
    from PIL import Image  # lazy: the data extra

    return Image


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes in one unbuffered read: for small images it costs half what buffered reads do."""
    with open(path, "rb", buffering=0) as handle:
        return handle.readall()


def decode_image(
    source: ImageSource, channels: int, size: tuple[int, int], name: str = "image"
) -> np.ndarray:
    """One source as uint8 (channels, height, width): converted, then resized (module docstring)."""
    if isinstance(source, np.ndarray):
        pixels = array_pixels(source, name)
        if _is_ready(pixels, channels, size):
            return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    with _decode_errors(name), _open_image(source, name) as image:
        pixels = np.asarray(_converted(image, channels, size, name))  # decoded here, while the file is open
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


@contextmanager
def _decode_errors(name: str) -> Iterator[None]:
    """Turn what Pillow raises on a missing, damaged or oversized image into one DataError line."""
    Image = pillow()

    try:
        yield
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{name}: no such file; restore it or remove it from the data") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{name}: too large to decode safely ({exc}); downscale or remove it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        reason = "Pillow recognises no image format in it"
        raise DataError(f"{name}: not a readable image ({reason}); remove it or replace it") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        # Pillow reports damaged files with any of these, depending on the format and the damage.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{name}: not a readable image ({reason}); remove it or replace it") from exc


def _is_ready(pixels: np.ndarray, channels: int, size: tuple[int, int]) -> bool:
    """Whether uint8 ``pixels`` already have the channels (no alpha) and size: nothing to convert."""
    if pixels.shape[:2] != tuple(size):
        return False
    return (pixels.ndim == 2 and channels == 1) or (pixels.ndim == 3 and pixels.shape[-1] == channels == 3)


def _open_image(source: ImageSource, name: str) -> Image.Image:
    Image = pillow()

    if isinstance(source, np.ndarray):
        return Image.fromarray(array_pixels(source, name))
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    if isinstance(source, Image.Image):
        return source.copy()  # the caller's image is closed by our `with`, so hand it a copy
    # Read whole, then decoded from memory: twice as fast as Pillow opening the path itself, which
    # reads a small PNG in many small calls.
    return Image.open(io.BytesIO(read_file(source)))


def _converted(image: Image.Image, channels: int, size: tuple[int, int], name: str) -> Image.Image:
    """``image`` in mode L (1 channel) or RGB (3), resized to ``size`` (height, width)."""
    Image = pillow()

    height, width = size
    if image.format == "JPEG" and image.size != (width, height):
        image.draft(image.mode, (width, height))  # decode a big JPEG at 1/2, 1/4 or 1/8 scale
    image = _eight_bit(image, name)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:  # Pillow>=10.1's has_transparency_data
        image = _composited_on_black(image, channels)
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        try:
            image = image.convert(target)
        except ValueError:  # modes Pillow converts only to RGB (LAB, La)
            image = image.convert("RGB").convert(target)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return image


def _eight_bit(image: Image.Image, name: str) -> Image.Image:
    """A 16-bit or float grayscale image as 8-bit L (Pillow's own convert would clip, not scale)."""
    Image = pillow()

    if image.mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_scaled_sixteen_bit(np.clip(np.asarray(image), 0, 65535)))
    if image.mode == "F":
        return Image.fromarray(_scaled_float(np.asarray(image), name))
    return image


def _composited_on_black(image: Image.Image, channels: int) -> Image.Image:
    """The image with its alpha multiplied in and dropped: L for one channel, RGB for three."""
    Image = pillow()

    with_alpha = np.asarray(image.convert("LA" if channels == 1 else "RGBA"))
    alpha = with_alpha[..., -1:].astype(np.uint16)
    values = (with_alpha[..., :-1] * alpha + 127) // 255  # round(value * alpha / 255)
    values = values.astype(np.uint8)
    return Image.fromarray(values[..., 0] if channels == 1 else values)


def array_pixels(array: np.ndarray, name: str) -> np.ndarray:
    """An image array as uint8 (H, W) or (H, W, C), C in 2..4, by the dtype rules of the module docstring."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (2, 3, 4))):
        raise DataError(
            f"{name}: an image array must be (height, width) or (height, width, channels) with 1 to 4 "
            f"channels, got shape {array.shape} (move a channels-first axis last)"
        )
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype == np.uint16:
        return _scaled_sixteen_bit(array)
    if kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise PixelRangeError(
                name,
                f"integer pixel values must lie in 0..255, found {low}..{high}",
                "store uint8, or uint16 for 16-bit images",
            )
        return array.astype(np.uint8)
    if kind == "f":
        return _scaled_float(array, name)
    raise DataError(f"{name}: an image array must hold integers or floats, not {array.dtype}")


def _scaled_sixteen_bit(values: np.ndarray) -> np.ndarray:
    """round(v * 255 / 65535) for v in 0..65535, in integers."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


class PixelRangeError(DataError):
    """Pixel values outside the range their type allows: ``problem`` says what was found, the
    message adds the general advice (a trained run's own is :func:`labelemb.predict.inputs`')."""

    def __init__(self, name: str, problem: str, advice: str) -> None:
        super().__init__(f"{name}: {problem}; {advice}")
        self.problem = problem


def _scaled_float(values: np.ndarray, name: str) -> np.ndarray:
    low, high = float(np.min(values)), float(np.max(values))
    if not (0.0 <= low and high <= 1.0):  # also catches NaN, whose comparisons are all false
        raise PixelRangeError(
            name,
            f"float pixel values must lie in [0, 1], found {low:g}..{high:g}",
            "divide by the largest value your pixels can hold (255 for 8-bit images) or store uint8",
        )
    return np.rint(values * 255.0).astype(np.uint8)


def _array_channels(pixels: np.ndarray) -> int:
    return 1 if pixels.ndim == 2 or pixels.shape[-1] == 2 else 3


def first_image_settings(
    source: ImageSource, name: str, channels: int | None, size: tuple[int, int] | None
) -> tuple[int, tuple[int, int]]:
    """``channels`` and ``size``, each taken from ``source`` (read lazily: its header only) when None."""
    if channels is not None and size is not None:
        return channels, size
    if isinstance(source, np.ndarray):
        pixels = array_pixels(source, name)
        found_channels, found_size = _array_channels(pixels), (pixels.shape[0], pixels.shape[1])
    else:
        with _decode_errors(name), _open_image(source, name) as image:
            found_channels = 1 if image.mode in _GRAY_MODES else 3
            found_size = (image.size[1], image.size[0])
    return channels or found_channels, size or found_size
