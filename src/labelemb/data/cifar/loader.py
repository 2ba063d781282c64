"""CIFAR-10 and CIFAR-100 from the official python pickles (the paper's protocols cifar10-resnet8
and cifar100-resnet18: all 50,000 training images train, the 10,000 test images test, no dev split):
where the files are searched for, the download, and the registered loaders.

Search order, the first hit wins; in each place the extracted folder (``cifar-10-batches-py/`` or
``cifar-100-python/``, or the place itself if it holds the files directly) is tried before the
archive (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``):

1. the ``data_dir`` argument, then its subfolder ``cifar10/`` (``cifar100/``);
2. the ``LABELEMB_DATA`` environment variable, with the same subfolder;
3. the cache ``$XDG_CACHE_HOME/labelemb/<name>`` (default ``~/.cache``), into which the archive is
   downloaded from https://www.cs.toronto.edu/~kriz/ and extracted when ``download`` is true.

Verification: an archive must have the official size and md5 before a byte of it is unpickled
(:mod:`labelemb.data.cifar.archive`); the files are unpickled safely and checked for structure,
and for their official md5s when the set holds the official counts
(:mod:`labelemb.data.cifar.batches`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..base import DataError, Dataset
from ..download import download_from_mirrors
from ..mnist import ENV_VAR, cache_dir, search_folders
from ..registry import DataRequest, register
from .archive import extract_archive, load_cifar_archive
from .batches import load_cifar_folder
from .spec import CIFAR10, CIFAR100, CifarSpec

# ---------------------------------------------------------------- search and download


def _folder_complete(folder: Path, spec: CifarSpec) -> tuple[bool, str]:
    if not folder.is_dir():
        return False, "no such folder"
    missing = [name for name in spec.files if not (folder / name).is_file()]
    return (not missing), ("missing " + ", ".join(missing) if missing else "")


def _roots(spec: CifarSpec, data_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """(place, where it came from) in search order, without duplicates, cache last."""
    return search_folders(data_dir, spec.subdirs, [(cache_dir(spec.name), "cache")])


def find_cifar(
    spec: CifarSpec, data_dir: str | os.PathLike[str] | None = None
) -> tuple[tuple[str, Path] | None, list[str]]:
    """Search the places of the module docstring (no download).

    Returns ``(("folder" | "archive", path), looked)`` for the first hit, or ``(None, looked)``,
    where ``looked`` has a line per place tried.
    """
    looked = []
    for root, origin in _roots(spec, data_dir):
        for folder in (root / spec.folder, root):
            ok, why = _folder_complete(folder, spec)
            if ok:
                return ("folder", folder), looked
            # A root without any of the files is not worth a line of its own.
            if folder is not root or any((root / n).is_file() for n in spec.files):
                looked.append(f"{folder} ({origin}): {why}")
        archive = root / spec.archive
        if archive.is_file():
            return ("archive", archive), looked
        looked.append(f"{archive} ({origin}): no such file")
    return None, looked


def missing_cifar(spec: CifarSpec, request: DataRequest) -> str | None:
    """One line: where ``spec``'s files were looked for and how to provide them; None if found."""
    hit, _ = find_cifar(spec, request.dir)
    if hit is not None:
        return None
    places = ", ".join(str(root) for root, _ in _roots(spec, request.dir))
    return (
        f"{spec.title} is not on this machine (looked in {places}); put {spec.archive} (from "
        "https://www.cs.toronto.edu/~kriz/cifar.html) in a folder DIR and pass --data-dir DIR or set "
        f"{ENV_VAR}=DIR"
    )


def load_cifar_spec(
    spec: CifarSpec,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
) -> Dataset:
    """Find (or download), verify and load the CIFAR dataset described by ``spec``."""
    hit, looked = find_cifar(spec, data_dir)
    cache = cache_dir(spec.name)
    if hit is not None:
        kind, path = hit
        if kind == "folder":
            return load_cifar_folder(path, spec)
        if path.parent == cache:
            # Ours to write: extract once so that later loads skip the decompression.
            return load_cifar_folder(extract_archive(path, cache, spec), spec)
        return load_cifar_archive(path, spec)
    if download:
        try:
            archive = download_from_mirrors(
                [m + spec.archive for m in spec.mirrors],
                cache / spec.archive,
                spec.archive_md5,
                spec.archive_size,
                progress=progress,
            )
        except DataError as exc:
            failure = f"Download into {cache} failed: {exc}"
        else:
            return load_cifar_folder(extract_archive(archive, cache, spec), spec)
    else:
        failure = f"Download is disabled (download=False); it would go into {cache}."
    raise DataError(
        f"{spec.title} files not found. Looked in:\n  " + "\n  ".join(looked) + f"\n{failure}\n"
        f"To provide them, put {spec.archive} (from https://www.cs.toronto.edu/~kriz/cifar.html, md5 "
        f"{spec.archive_md5}) or its extracted {spec.folder}/ in a folder DIR (or DIR/{spec.subdirs[0]}) "
        f"and pass --data-dir DIR or set {ENV_VAR}=DIR."
    )


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True, *, progress: bool = True
) -> Dataset:
    """CIFAR-10: 50,000 train / 10,000 test images (3, 32, 32) in [0, 1], 10 classes, no dev split."""
    return load_cifar_spec(CIFAR10, data_dir, download, progress=progress)


def load_cifar100(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True, *, progress: bool = True
) -> Dataset:
    """CIFAR-100 (fine labels): 50,000 train / 10,000 test images, 100 classes, no dev split."""
    return load_cifar_spec(CIFAR100, data_dir, download, progress=progress)


@register("cifar10", yields="images", missing=lambda request: missing_cifar(CIFAR10, request))
def _cifar10(request: DataRequest) -> Dataset:
    return load_cifar10(request.dir, request.download, progress=request.progress).limited(
        request.max_train_pairs
    )


@register("cifar100", yields="images", missing=lambda request: missing_cifar(CIFAR100, request))
def _cifar100(request: DataRequest) -> Dataset:
    return load_cifar100(request.dir, request.download, progress=request.progress).limited(
        request.max_train_pairs
    )
