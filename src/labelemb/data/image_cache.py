"""Images decoded once into a uint8 tensor cache on disk, memory-mapped when read.

:func:`cached_images` turns the image sources of one split (file paths, encoded bytes, arrays or
Pillow images) into a uint8 ``(N, C, H, W)`` tensor that maps a cache file, so a data set larger
than memory trains from the map and a second run decodes nothing.

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

The cache file is named by the sha256 of the sources' content in order (file bytes, encoded
bytes, array dtype, shape and bytes) and of the preprocessing (channels, size, filter, this
module's format version); its 128-byte header repeats the digest, holds the shape and the sha256
of the pixels, and a file whose header, length or pixels disagree (flipped bits on a disk, an
edit) is rebuilt, with a warning. It is written to a temporary file in the cache
folder, flushed and fsync'd, then moved into place with ``os.replace``, under a file lock, so two
processes building the same cache build it once and a killed build leaves nothing that is read
as a cache (its temporary file is deleted by the next build of the same cache).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from tqdm import tqdm

from .base import DataError
from .cache_files import build_lock, make_folder, remove_leftovers, write_atomically

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from PIL import Image

    ImageSource = str | os.PathLike[str] | bytes | np.ndarray | Image.Image

#: Bump when what a source decodes to changes, so that old caches are not read as new ones.
FORMAT_VERSION = 2
RESAMPLE = "bilinear"
#: magic, format version, N, C, H, W, sha256 of the key, sha256 of the pixels; padded to HEADER_BYTES.
_HEADER = struct.Struct("<16sI4Q32s32s")
HEADER_BYTES = 128
_MAGIC = b"labelemb-images\n"
#: Decoded images are gathered in a buffer of about this size, then written in one call.
_CHUNK_BYTES = 32 << 20
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_GRAY_MODES = ("1", "L", "LA", "La", "F", *_SIXTEEN_BIT_MODES)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_WHAT = "image cache"


def cached_images(
    sources: Sequence[ImageSource],
    *,
    names: Sequence[str],
    channels: int | None,
    size: tuple[int, int] | None,
    cache_dir: Path,
    label: str = "",
    progress: bool = True,
) -> torch.Tensor:
    """The images of ``sources`` as uint8 (N, C, H, W), memory-mapped from a cache in ``cache_dir``.

    ``names`` says what an error calls each source (a path, or "train.csv row 17"). ``channels``
    is 1 or 3, or None for the first image's (1 for a grayscale mode, else 3); ``size`` is
    (height, width), or None for the first image's. Writing to the returned tensor changes only
    this process's copy of the page, never the cache file.
    """
    _check_arguments(sources, names, channels, size)
    size = None if size is None else (int(size[0]), int(size[1]))  # a config's list keys as a tuple
    if not sources:
        if channels is None or size is None:
            raise DataError(f"{label or 'images'}: no images, so neither channels nor size can be read")
        return torch.zeros((0, channels, *size), dtype=torch.uint8)
    cache_dir = Path(cache_dir)
    key = image_cache_key(sources, names=names, channels=channels, size=size, progress=progress, label=label)
    path = cache_dir / f"images-{key[:32]}.u8"
    images = open_cache(path, key, len(sources))
    if images is not None:
        return images  # read without the lock: a cache file is only ever replaced whole
    make_folder(cache_dir, _WHAT)
    with build_lock(path, progress, _WHAT):
        # Built by another process while we waited? (Its damage, if any, was reported above.)
        images = open_cache(path, key, len(sources), warn=False)
        if images is None:
            remove_leftovers(path)
            _write_cache(path, key, sources, names, channels, size, label, progress)
            images = open_cache(path, key, len(sources), warn=False)
    if images is None:
        raise DataError(f"{path}: the image cache just written does not read back; delete {cache_dir}")
    return images


def _check_arguments(
    sources: Sequence[ImageSource],
    names: Sequence[str],
    channels: int | None,
    size: tuple[int, int] | None,
) -> None:
    # Caller mistakes, not bad data: plain ValueErrors.
    if len(names) != len(sources):
        raise ValueError(f"{len(sources)} image sources but {len(names)} names")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (height, width) with both at least 1, got {size!r}")


@functools.cache
def _pillow() -> ModuleType:
    """PIL.Image, imported on first use: importing labelemb.data should not pay for it (50 ms)."""
    from PIL import Image

    return Image


# --- the key -------------------------------------------------------------------------------------


def image_cache_key(
    sources: Sequence[ImageSource],
    *,
    names: Sequence[str],
    channels: int | None,
    size: tuple[int, int] | None,
    progress: bool = False,
    label: str = "",
) -> str:
    """Hex sha256 of the sources' content in order and of the preprocessing they go through.

    A file path and the bytes of that file give the same key: both decode the same.
    """
    settings = f"v{FORMAT_VERSION} channels={channels} size={size} resample={RESAMPLE} alpha=black"
    digest = hashlib.sha256(settings.encode())
    items = tqdm(
        zip(sources, names),
        total=len(sources),
        desc=f"{label or 'images'}: hashing",
        unit="img",
        disable=not progress,
        leave=False,
    )
    for source, name in items:
        digest.update(content_digest(source, name))
    return digest.hexdigest()


def content_digest(source: ImageSource, name: str) -> bytes:
    """sha256 of one source's content: encoded bytes, or an array's dtype, shape and values."""
    Image = _pillow()

    if isinstance(source, bytes):
        return _digest(b"encoded\0", source)
    if isinstance(source, np.ndarray):
        return _array_digest(source, name)
    if isinstance(source, Image.Image):
        return _digest(f"pillow\0{source.mode}\0{source.size}\0".encode(), source.tobytes())
    return _file_digest(source, name)


def _digest(header: bytes, content: bytes | memoryview) -> bytes:
    digest = hashlib.sha256(header)
    digest.update(content)
    return digest.digest()


def _file_digest(path: str | os.PathLike[str], name: str) -> bytes:
    try:
        content = read_file(path)
    except OSError as exc:
        raise DataError(
            f"{name}: cannot be read ({exc.strerror or exc}); restore the file or remove it"
        ) from exc
    return _digest(b"encoded\0", content)


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes in one unbuffered read: for small images it costs half what buffered reads do."""
    with open(path, "rb", buffering=0) as handle:
        return handle.readall()


def _array_digest(array: np.ndarray, name: str) -> bytes:
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name}: an image array must hold integers or floats, not {array.dtype}")
    header = f"array\0{array.dtype.str}\0{array.shape}\0".encode()
    return _digest(header, np.ascontiguousarray(array).data)


# --- decoding ------------------------------------------------------------------------------------


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
    Image = _pillow()

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
    Image = _pillow()

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
    Image = _pillow()

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
    Image = _pillow()

    if image.mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_scaled_sixteen_bit(np.clip(np.asarray(image), 0, 65535)))
    if image.mode == "F":
        return Image.fromarray(_scaled_float(np.asarray(image), name))
    return image


def _composited_on_black(image: Image.Image, channels: int) -> Image.Image:
    """The image with its alpha multiplied in and dropped: L for one channel, RGB for three."""
    Image = _pillow()

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
            raise DataError(
                f"{name}: integer pixel values must lie in 0..255, found {low}..{high}; store uint8, or "
                "uint16 for 16-bit images"
            )
        return array.astype(np.uint8)
    if kind == "f":
        return _scaled_float(array, name)
    raise DataError(f"{name}: an image array must hold integers or floats, not {array.dtype}")


def _scaled_sixteen_bit(values: np.ndarray) -> np.ndarray:
    """round(v * 255 / 65535) for v in 0..65535, in integers."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _scaled_float(values: np.ndarray, name: str) -> np.ndarray:
    low, high = float(np.min(values)), float(np.max(values))
    if not (0.0 <= low and high <= 1.0):  # also catches NaN, whose comparisons are all false
        raise DataError(
            f"{name}: float pixel values must lie in [0, 1], found {low:g}..{high:g}; divide by 255 or "
            "store uint8"
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


# --- the cache file ------------------------------------------------------------------------------


def open_cache(path: Path, key: str, count: int, *, warn: bool = True) -> torch.Tensor | None:
    """The cache at ``path`` memory-mapped as uint8 (N, C, H, W), or None if it is absent or damaged
    (a warning says which).

    Damaged: a header that is not ours, of another format version or key, another image count,
    a length that is not header + N * C * H * W (a truncated file), or pixels whose sha256 is not
    the header's (bytes changed on disk).
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(HEADER_BYTES)
            length = os.fstat(handle.fileno()).st_size
    except OSError:
        return None
    problem = _header_problem(header, length, key, count)
    if problem is None:
        shape = tuple(_HEADER.unpack_from(header)[2:6])
        # Copy-on-write: torch gets a writable array (no warning), and a write never reaches the file.
        mapped = np.memmap(path, dtype=np.uint8, mode="c", offset=HEADER_BYTES, shape=shape)
        if _pixels_digest(mapped) == _HEADER.unpack_from(header)[7]:
            return torch.from_numpy(mapped)
        problem = "its pixels do not match the digest in its header"
    if warn:
        logger.warning("%s %s is damaged (%s): decoding the images again", _WHAT, path, problem)
    return None


def _header_problem(header: bytes, length: int, key: str, count: int) -> str | None:
    if len(header) < HEADER_BYTES:
        return "shorter than its header"
    magic, version, *shape, digest, _ = _HEADER.unpack_from(header)
    if magic != _MAGIC or version != FORMAT_VERSION or digest != bytes.fromhex(key) or shape[0] != count:
        return "its header is not this cache's"
    if length != HEADER_BYTES + int(np.prod(shape)):
        return f"{length} bytes where {HEADER_BYTES + int(np.prod(shape))} were written"
    return None


def _pixels_digest(pixels: np.ndarray) -> bytes:
    digest = hashlib.sha256()
    flat = pixels.reshape(-1)
    for start in range(0, len(flat), _CHUNK_BYTES):
        digest.update(flat[start : start + _CHUNK_BYTES].data)
    return digest.digest()


def _write_cache(
    path: Path,
    key: str,
    sources: Sequence[ImageSource],
    names: Sequence[str],
    channels: int | None,
    size: tuple[int, int] | None,
    label: str,
    progress: bool,
) -> None:
    """Decode every source into a temporary file, then move it to ``path`` (see the module docstring)."""
    channels, size = first_image_settings(sources[0], names[0], channels, size)
    shape = (len(sources), channels, *size)

    def header(pixels_digest: bytes) -> bytes:
        packed = _HEADER.pack(_MAGIC, FORMAT_VERSION, *shape, bytes.fromhex(key), pixels_digest)
        return packed.ljust(HEADER_BYTES, b"\0")

    def write(handle: BinaryIO) -> None:
        handle.write(header(bytes(32)))
        pixels_digest = _write_images(handle, sources, names, shape, label, progress)
        handle.seek(0)
        handle.write(header(pixels_digest))

    write_atomically(path, _WHAT, write)


def _write_images(
    handle: BinaryIO,
    sources: Sequence[ImageSource],
    names: Sequence[str],
    shape: tuple[int, int, int, int],
    label: str,
    progress: bool,
) -> bytes:
    """Decode the sources in order into a chunk buffer, writing each full chunk to ``handle``;
    return the sha256 of all the pixels written."""
    count, channels, height, width = shape
    per_chunk = max(1, min(count, _CHUNK_BYTES // (channels * height * width)))
    chunk = np.empty((per_chunk, channels, height, width), dtype=np.uint8)
    digest = hashlib.sha256()
    filled = 0
    with tqdm(total=count, desc=label or "decoding images", unit="img", disable=not progress) as bar:
        for index in range(count):
            chunk[filled] = decode_image(sources[index], channels, (height, width), names[index])
            filled += 1
            if filled == per_chunk or index == count - 1:
                handle.write(chunk[:filled].data)
                digest.update(chunk[:filled].data)
                filled = 0
            bar.update()
    return digest.digest()
