"""CIFAR's ``.tar.gz`` archives: checked for the official size and md5 before a byte of them is
unpickled, then read in memory (an archive in a user's folder, which is never written to) or
extracted (one in the cache, once, so that later loads read the extracted files).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..base import DataError, Dataset
from .batches import build_cifar_dataset
from .spec import CifarSpec

_CHUNK = 1 << 20


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(path: str | os.PathLike[str], spec: CifarSpec) -> None:
    """Raise DataError unless the archive has the official size and md5 of ``spec``."""
    path = Path(path)
    hint = spec.hint
    try:
        size = path.stat().st_size
        if spec.archive_size is not None and size != spec.archive_size:
            raise DataError(
                f"{path}: is {size:,} bytes, the official {spec.archive} is {spec.archive_size:,} bytes "
                f"(md5 {spec.archive_md5}). {hint}"
            )
        actual = _file_md5(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc}. {hint}") from exc
    if actual != spec.archive_md5:
        raise DataError(
            f"{path}: md5 is {actual}, expected {spec.archive_md5} (the official {spec.archive}); "
            f"the archive is damaged or not the original. {hint}"
        )


def _is_unsafe(name: str) -> bool:
    p = PurePosixPath(name)
    return p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or "\\" in name


def _archive_members(tar: tarfile.TarFile, path: Path, spec: CifarSpec) -> dict[str, tarfile.TarInfo]:
    """The member of each file of ``spec.files``, refusing archives with unsafe members."""
    hint = spec.hint
    wanted = {f"{spec.folder}/{name}": name for name in spec.files}
    found: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if _is_unsafe(member.name) or ((member.issym() or member.islnk()) and _is_unsafe(member.linkname)):
            raise DataError(f"{path}: holds an unsafe member {member.name!r}; refusing the archive. {hint}")
        name = wanted.get(member.name[2:] if member.name.startswith("./") else member.name)
        if name is not None:
            if not member.isfile():
                raise DataError(f"{path}: member {member.name!r} is not a regular file. {hint}")
            found[name] = member
    missing = [f"{spec.folder}/{n}" for n in spec.files if n not in found]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)}. {hint}")
    # In archive order: a gzip stream only reads forward, and each step back decompresses it
    # again from the start.
    return dict(sorted(found.items(), key=lambda item: item[1].offset_data))


def _open_archive(path: Path, spec: CifarSpec, action: Callable[[tarfile.TarFile, dict], Any]) -> Any:
    try:
        with tarfile.open(path, "r:gz") as tar:
            return action(tar, _archive_members(tar, path, spec))
    except (tarfile.TarError, EOFError, OSError) as exc:
        # zlib.error is not an OSError but tarfile wraps it in ReadError.
        raise DataError(f"{path}: cannot read the archive: {exc}. {spec.hint}") from exc


def load_cifar_archive(path: str | os.PathLike[str], spec: CifarSpec) -> Dataset:
    """Verify the archive (size, md5), then read the dataset straight from it, writing nothing."""
    path = Path(path)
    verify_archive(path, spec)

    def read(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, bytes]:
        out = {}
        for name, member in members.items():
            handle = tar.extractfile(member)
            if handle is None:  # cannot happen for a regular file; keeps the type checker honest
                raise DataError(f"{path}: member {member.name!r} cannot be read. {spec.hint}")
            out[name] = handle.read()
        return out

    contents = _open_archive(path, spec, read)
    sources = {name: f"{path}!{spec.folder}/{name}" for name in spec.files}
    # The archive's md5 already covers every member.
    return build_cifar_dataset(contents, replace(spec, file_md5={}), sources)


def extract_archive(path: str | os.PathLike[str], dest: str | os.PathLike[str], spec: CifarSpec) -> Path:
    """Verify the archive, extract ``spec.folder`` into ``dest`` and return the extracted folder.

    Only the dataset's own files are extracted, with tarfile's "data" filter where this Python has
    it (3.11.4+), into a temporary folder that is renamed into place once complete, so a crash
    never leaves a half-extracted folder for the next search to find. An existing folder of that
    name in ``dest`` is replaced: call this only on folders the loader owns (the cache).
    """
    path, dest = Path(path), Path(dest)
    verify_archive(path, spec)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", suffix=".part", dir=dest))
    try:

        def extract(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> None:
            chosen = list(members.values())
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=chosen, filter="data")
            else:
                # Older Pythons: safe too, the chosen members are regular files with fixed names.
                tar.extractall(tmp, members=chosen)

        _open_archive(path, spec, extract)
        target = dest / spec.folder
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / spec.folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
