"""Verified downloads: stream to a temp file beside the target, check md5, then rename."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..progress import draws_bar
from .base import DataError

# Short, so that machines without network fail fast instead of hanging on a dead mirror.
DEFAULT_TIMEOUT_S = 10.0
_CHUNK = 1 << 20


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    md5: str,
    expected_size: int | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and verify its md5 (and size, when given).

    The bytes go to a temporary file in dest's folder and are moved into place with
    ``os.replace`` only once verified, so ``dest`` is never left half-written or wrong. Any
    failure (network, size, md5) raises DataError and leaves no file behind. A tqdm bar is drawn
    only on a terminal, unless ``progress`` is False (:func:`labelemb.progress.draws_bar`).
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise DataError(f"cannot write to {dest.parent} to download {url}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else expected_size
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=dest.name,
                        disable=not draws_bar(progress),
                        leave=False,
                    ) as bar:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                # URLError and socket timeouts are OSErrors; ValueError covers malformed URLs.
                raise DataError(f"download of {url} failed: {exc}") from exc
        if expected_size is not None and size != expected_size:
            raise DataError(f"download of {url} is {size} bytes, expected {expected_size}; nothing was kept")
        actual = digest.hexdigest()
        if actual != md5.lower():
            raise DataError(
                f"download of {url} has md5 {actual}, expected {md5}; nothing was kept "
                "(the mirror may serve a different or damaged file)"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def download_from_mirrors(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    md5: str,
    expected_size: int | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Try ``download_file`` on each URL in order; raise DataError listing every failure."""
    errors = []
    for url in urls:
        try:
            return download_file(url, dest, md5, expected_size, timeout=timeout, progress=progress)
        except DataError as exc:
            errors.append(str(exc))
    raise DataError(f"could not download {Path(dest).name} from any mirror:\n  " + "\n  ".join(errors))
