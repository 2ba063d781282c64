"""Images decoded once into a uint8 tensor cache on disk, memory-mapped when read.

:func:`cached_images` turns the image sources of one split (file paths, encoded bytes, arrays or
Pillow images) into a uint8 ``(N, C, H, W)`` tensor that maps a cache file, so a data set larger
than memory trains from the map and a second run decodes nothing.

The cache file is named by the sha256 of the sources' content in order (file bytes, encoded
bytes, array dtype, shape and bytes) and of the preprocessing (channels, size, filter, this
module's format version); its 128-byte header repeats the digest, holds the shape and the sha256
of the pixels, and a file whose header, length or pixels disagree (flipped bits on a disk, an
edit) is rebuilt, with a warning. It is written to a temporary file in the cache
folder, flushed and fsync'd, then moved into place with ``os.replace``, under a file lock, so two
processes building the same cache build it once and a killed build leaves nothing that is read
as a cache (its temporary file is deleted by the next build of the same cache).

How a source is decoded (channels, size, alpha, arrays, the size limit) is
:mod:`labelemb.data.image_decode`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from tqdm import tqdm

from ..progress import draws_bar
from .base import DataError
from .cache_files import build_once, write_atomically
from .image_decode import decode_image, first_image_settings, pillow, read_file

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .image_decode import ImageSource

#: Bump when what a source decodes to changes, so that old caches are not read as new ones.
FORMAT_VERSION = 2
RESAMPLE = "bilinear"
#: magic, format version, N, C, H, W, sha256 of the key, sha256 of the pixels; padded to HEADER_BYTES.
_HEADER = struct.Struct("<16sI4Q32s32s")
HEADER_BYTES = 128
_MAGIC = b"labelemb-images\n"
#: Decoded images are gathered in a buffer of about this size, then written in one call.
_CHUNK_BYTES = 32 << 20
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
    this process's copy of the page, never the cache file. ``progress``: bars while the sources
    are hashed and decoded, drawn only on a terminal (:func:`labelemb.progress.draws_bar`).
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

    def read_back() -> torch.Tensor | None:
        # Built by another process while we waited? (Its damage, if any, was reported above.)
        return open_cache(path, key, len(sources), warn=False)

    def build() -> torch.Tensor | None:
        _write_cache(path, key, sources, names, channels, size, label, progress)
        return read_back()

    images, _ = build_once(path, _WHAT, read_back, build, progress=progress)
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
        disable=not draws_bar(progress),
        leave=False,
    )
    for source, name in items:
        digest.update(content_digest(source, name))
    return digest.hexdigest()


def content_digest(source: ImageSource, name: str) -> bytes:
    """sha256 of one source's content: encoded bytes, or an array's dtype, shape and values."""
    Image = pillow()

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


def _array_digest(array: np.ndarray, name: str) -> bytes:
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name}: an image array must hold integers or floats, not {array.dtype}")
    header = f"array\0{array.dtype.str}\0{array.shape}\0".encode()
    return _digest(header, np.ascontiguousarray(array).data)


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
    shown = draws_bar(progress)
    with tqdm(total=count, desc=label or "decoding images", unit="img", disable=not shown) as bar:
        for index in range(count):
            chunk[filled] = decode_image(sources[index], channels, (height, width), names[index])
            filled += 1
            if filled == per_chunk or index == count - 1:
                handle.write(chunk[:filled].data)
                digest.update(chunk[:filled].data)
                filled = 0
            bar.update()
    return digest.digest()
