"""Cache files written whole or not at all: a file lock per cache, a temporary file beside it,
fsync, ``os.replace``, and the folder synced after. Shared by the image cache and the feature cache.

A build holds ``<cache>.lock`` (so two processes building one cache build it once), writes into
``.<cache>.<pid>.<random>.tmp`` in the same folder and renames it into place; a killed build
leaves only its temporary file, which the next build of the same cache deletes.
:func:`build_once` is that whole build, given how a cache reads its file and how it builds it.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

from filelock import FileLock, Timeout
from tqdm import tqdm

from .base import DataError

T = TypeVar("T")

WRITABLE_HINT = "set data.files.cache_dir (or $LABELEMB_CACHE) to a writable folder"


def not_writable(folder: Path, exc: OSError, what: str) -> str:
    return f"cannot write to the {what} folder {folder} ({exc}); {WRITABLE_HINT}"


def make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(not_writable(folder, exc, what)) from exc


def build_once(
    path: Path, what: str, read: Callable[[], T | None], build: Callable[[], T], *, progress: bool
) -> tuple[T, bool]:
    """The cache file at ``path`` built by one process of those that want it: its folder made, its
    build lock held (:func:`build_lock`), then what ``read()`` finds there (another process built
    it meanwhile) and True; else, the leftovers of killed builds removed, what ``build()`` returns
    (it writes the file with :func:`write_atomically`) and False."""
    make_folder(path.parent, what)
    with build_lock(path, progress, what):
        found = read()
        if found is not None:
            return found, True
        remove_leftovers(path)
        return build(), False


@contextmanager
def build_lock(path: Path, progress: bool, what: str) -> Iterator[None]:
    """Hold the file lock beside ``path`` while it is built; say so when another process holds it."""
    lock = FileLock(f"{path}.lock")
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress:
                tqdm.write(f"waiting for another process to build the {what} {path}", file=sys.stderr)
            lock.acquire()
    except OSError as exc:
        raise DataError(not_writable(path.parent, exc, what)) from exc
    try:
        yield
    except BaseException:
        # A failed build leaves nothing behind, its lock file included (a process waiting on it
        # builds anyway; the atomic rename keeps two builders from tearing the cache).
        Path(lock.lock_file).unlink(missing_ok=True)
        raise
    finally:
        lock.release()


def remove_leftovers(path: Path) -> None:
    """Delete temporary files of builds of ``path`` that were killed (we hold its lock: none is live)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)


def open_temporary(path: Path, what: str) -> tuple[Path, int]:
    """A new temporary file beside ``path`` (its name and an open write descriptor)."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # Not mkstemp: its 0600 would keep a shared cache folder's other users from reading the cache.
        return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise DataError(not_writable(path.parent, exc, what)) from exc


def write_atomically(path: Path, what: str, write: Callable[[BinaryIO], None]) -> None:
    """``write(handle)`` into a temporary file beside ``path``, flushed and fsync'd, then moved to
    ``path`` and the folder synced: the file is there whole or not at all."""
    temporary, descriptor = open_temporary(path, what)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise DataError(f"cannot write the {what} {path} ({exc}); free space or {WRITABLE_HINT}") from exc
    finally:
        temporary.unlink(missing_ok=True)  # gone after the replace; a leftover after a failure
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync the folder, so the rename survives a crash; skipped where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the data itself is already synced
    finally:
        os.close(descriptor)
