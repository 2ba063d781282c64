"""The content digest of your files, as a run records it: a run never continues on other data."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..registry import DataRequest
from .options import FilesOptions
from .paths import SPLITS, find_file, split_files


def files_fingerprint(request: DataRequest) -> str | None:
    """The content digest of the files a request names (:func:`fingerprint`), as a run records it;
    None for a hub data set, whose content is not read before loading."""
    files = request.options(FilesOptions).model_dump()
    if files.get("format") == "hub":
        return None
    return fingerprint(files, request)


def fingerprint(files: dict[str, Any], request: DataRequest) -> str:
    """A digest of the data's content: the bytes of every file a split names (all the files of an
    image folder), or a saved / hub data set's own fingerprints. A resumed run compares it, so a
    run never continues on other data under the same file names."""
    digest = hashlib.sha256()
    fmt = files.get("format", "csv")
    if fmt in ("disk", "hub"):
        digest.update(str(files.get("path")).encode())
        if fmt == "disk":
            folder = find_file(files["path"], request, "save_to_disk folder")
            for state in sorted(folder.rglob("state.json")):
                digest.update(state.read_bytes())
        return digest.hexdigest()
    names = [files["path"]] if fmt == "npz" and files.get("path") else []
    names += [n for split in SPLITS for n in split_files(files, split)]
    for name in names:
        path = find_file(name, request, "file")
        digest.update(path_digest(path))
    return digest.hexdigest()


def path_digest(path: Path) -> bytes:
    """sha256 over a file's bytes, or over the names and bytes of every file under a folder."""
    if not path.is_dir():
        return _file_digest(path)
    digest = hashlib.sha256()
    for part in sorted(path.rglob("*")):
        if part.is_file():
            digest.update(part.name.encode())
            digest.update(_file_digest(part))
    return digest.digest()


#: File digests of this process, keyed by what changes whenever a file's content does (the inode's
#: change time too, which no copy tool can set back), so a command hashes each file once.
_DIGESTS: dict[tuple[str, int, int, int, int], bytes] = {}


def _file_digest(path: Path) -> bytes:
    status = path.stat()
    key = (str(path.resolve()), status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.digest()
    return _DIGESTS[key]
