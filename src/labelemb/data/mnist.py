"""MNIST and Fashion-MNIST: find the four IDX files, verify them, split as in the paper.

Search order for a folder holding all four files (each gzip'd or raw):

1. the ``data_dir`` argument, and its subfolders ``<name>/`` and ``<TorchName>/raw``;
2. the ``LABELEMB_DATA`` environment variable, with the same subfolder rules;
3. system folders (Debian's ``dataset-fashion-mnist`` package for Fashion-MNIST);
4. the cache ``$XDG_CACHE_HOME/labelemb/<name>`` (default ``~/.cache``), downloaded into when
   ``download`` is true.

Whatever is found is verified by the md5 of its decompressed content, so a gzip'd copy with a
different header (as Debian ships) is accepted and any change to the data is not.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DataError, Dataset, Split, check_labels
from .download import download_from_mirrors
from .idx import parse_idx, read_idx_bytes
from .origins import RowOrigins
from .registry import DataRequest, register

ENV_VAR = "LABELEMB_DATA"


@dataclass(frozen=True)
class IdxFile:
    """One of the four files: its raw name, decompressed md5 and published .gz md5/size."""

    name: str
    md5: str | None
    gz_md5: str
    gz_size: int | None = None


@dataclass(frozen=True)
class IdxDatasetSpec:
    """Everything that tells MNIST-style datasets apart: names, checksums, mirrors, folders."""

    name: str
    title: str
    subdirs: tuple[str, ...]
    class_names: tuple[str, ...]
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    dev_size: int = 5000
    extra_hint: str = ""

    @property
    def files(self) -> tuple[IdxFile, IdxFile, IdxFile, IdxFile]:
        """The four files in the order train images, train labels, test images, test labels."""
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)

    @property
    def hint(self) -> str:
        """How to get a good copy, appended to every error about one of this dataset's files."""
        return (
            "Delete it and run again with download enabled to re-download it, or pass --data-dir "
            f"(or set {ENV_VAR}) to a folder with the original {self.title} files." + self.extra_hint
        )


MNIST = IdxDatasetSpec(
    name="mnist",
    title="MNIST",
    subdirs=("mnist", "MNIST/raw"),
    class_names=("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    train_images=IdxFile(
        "train-images-idx3-ubyte",
        "6bbc9ace898e44ae57da46a324031adb",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        9912422,
    ),
    train_labels=IdxFile(
        "train-labels-idx1-ubyte",
        "a25bea736e30d166cdddb491f175f624",
        "d53e105ee54ea40749a09fcbcd1e9432",
        28881,
    ),
    test_images=IdxFile(
        "t10k-images-idx3-ubyte",
        "2646ac647ad5339dbf082846283269ea",
        "9fb629c4189551a2d022fa330f9573f3",
        1648877,
    ),
    test_labels=IdxFile(
        "t10k-labels-idx1-ubyte",
        "27ae3e4e09519cfbb04c329615203637",
        "ec29112dd5afa0611ce80d1b7f02629c",
        4542,
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://yann.lecun.com/exdb/mnist/",
    ),
)

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST = IdxDatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    subdirs=("fashion-mnist", "FashionMNIST/raw"),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    # gz md5s and sizes are upstream's; Debian's copies differ only in the gzip header, which
    # is why loading checks the decompressed md5 instead.
    train_images=IdxFile(
        "train-images-idx3-ubyte",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        26421880,
    ),
    train_labels=IdxFile(
        "train-labels-idx1-ubyte",
        "9018921c3c673c538a1fc5bad174d6f9",
        "25c81989df183df01b3e8a0aad5dffbe",
        29515,
    ),
    test_images=IdxFile(
        "t10k-images-idx3-ubyte",
        "8181f5470baa50b63fa0f6fddb340f0a",
        "bef4ecab320f06d8554ea6380940ec79",
        4422102,
    ),
    test_labels=IdxFile(
        "t10k-labels-idx1-ubyte",
        "15d484375f8d13e6eb1aabb0c3f46965",
        "bb300cfdad3c16e7a12a480ee83cd310",
        5148,
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=(DEBIAN_FASHION_MNIST_DIR,),
    extra_hint=(
        " On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` (or `--reinstall`) installs "
        f"them in {DEBIAN_FASHION_MNIST_DIR}."
    ),
)


def cache_dir(name: str) -> Path:
    """The download cache for dataset ``name``: ``$XDG_CACHE_HOME/labelemb/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labelemb" / name


def _file_in(folder: Path, f: IdxFile) -> Path | None:
    # The raw file wins over the .gz: reading it skips decompression, and it is verified anyway.
    for candidate in (folder / f.name, folder / (f.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def search_folders(
    data_dir: str | os.PathLike[str] | None, subdirs: tuple[str, ...], after: list[tuple[Path, str]]
) -> list[tuple[Path, str]]:
    """(folder, where it came from) in search order, without duplicates.

    ``data_dir``, then ``$LABELEMB_DATA``, each itself and then its ``subdirs``; then ``after``.
    """
    bases: list[tuple[Path, str]] = []
    if data_dir is not None:
        bases.append((Path(data_dir).expanduser(), "data_dir"))
    env = os.environ.get(ENV_VAR)
    if env:
        bases.append((Path(env).expanduser(), f"${ENV_VAR}"))
    folders = [(folder, origin) for base, origin in bases for folder in (base, *(base / s for s in subdirs))]
    seen: set[str] = set()
    unique = []
    for folder, origin in [*folders, *after]:
        key = os.path.abspath(folder)
        if key not in seen:
            seen.add(key)
            unique.append((folder, origin))
    return unique


def _candidate_dirs(spec: IdxDatasetSpec, data_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """(folder, where it came from) in search order, without duplicates, cache excluded."""
    return search_folders(data_dir, spec.subdirs, [(Path(d), "system") for d in spec.system_dirs])


def _probe(folder: Path, spec: IdxDatasetSpec) -> tuple[list[Path] | None, str]:
    """Return (the four paths, "") if the folder holds them all, else (None, what is missing)."""
    if not folder.is_dir():
        return None, "no such folder"
    paths = [_file_in(folder, f) for f in spec.files]
    missing = [f.name + "[.gz]" for f, p in zip(spec.files, paths, strict=True) if p is None]
    if missing:
        return None, "missing " + ", ".join(missing)
    return [p for p in paths if p is not None], ""


def find_idx_files(
    spec: IdxDatasetSpec, data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[Path] | None, list[str]]:
    """Search the places of the module docstring (cache included, no download).

    Returns the four paths of the first complete folder (or None) and a line per place looked.
    """
    looked = []
    for folder, origin in [*_candidate_dirs(spec, data_dir), (cache_dir(spec.name), "cache")]:
        paths, why = _probe(folder, spec)
        if paths is not None:
            return paths, looked
        looked.append(f"{folder} ({origin}): {why}")
    return None, looked


def missing_idx_files(spec: IdxDatasetSpec, request: DataRequest) -> str | None:
    """One line: where ``spec``'s four files were looked for and how to provide them; None if found."""
    paths, looked = find_idx_files(spec, request.dir)
    if paths is not None:
        return None
    places = ", ".join(line.partition(" (")[0] for line in looked)
    names = ", ".join(f.name + ".gz" for f in spec.files)
    return (
        f"{spec.title} is not on this machine (looked in {places}); put {names} in a folder DIR and "
        f"pass --data-dir DIR or set {ENV_VAR}=DIR." + spec.extra_hint
    )


def _download(spec: IdxDatasetSpec, folder: Path, progress: bool) -> None:
    for f in spec.files:
        if _file_in(folder, f) is None:
            download_from_mirrors(
                [m + f.name + ".gz" for m in spec.mirrors],
                folder / (f.name + ".gz"),
                f.gz_md5,
                f.gz_size,
                progress=progress,
            )


def _read_verified(path: Path, f: IdxFile, hint: str) -> np.ndarray:
    data = read_idx_bytes(path, hint=hint)
    # Parse before hashing: a structural problem (truncation, wrong magic) is the clearer report.
    arr = parse_idx(data, path, hint=hint)
    if f.md5 is not None:
        actual = hashlib.md5(data).hexdigest()
        if actual != f.md5:
            raise DataError(
                f"{path}: md5 of the decompressed content is {actual}, expected {f.md5} "
                f"({f.name}); the file is damaged or not the original. {hint}"
            )
    return arr


def load_idx_dataset(paths: list[Path], spec: IdxDatasetSpec) -> Dataset:
    """Read and verify the four files (in ``spec.files`` order) and build the Dataset.

    The first ``spec.dev_size`` training images become ``dev``, the rest ``train``.
    """
    hint = spec.hint
    train_x, train_y, test_x, test_y = (
        _read_verified(p, f, hint) for p, f in zip(paths, spec.files, strict=True)
    )
    for arr, path, want in (
        (train_x, paths[0], 3),
        (train_y, paths[1], 1),
        (test_x, paths[2], 3),
        (test_y, paths[3], 1),
    ):
        if arr.ndim != want:
            what = "images (N, H, W)" if want == 3 else "labels (N,)"
            raise DataError(f"{path}: has {arr.ndim} dimensions {arr.shape}, expected {what}. {hint}")
    for x, y, px, py in (
        (train_x, train_y, paths[0], paths[1]),
        (test_x, test_y, paths[2], paths[3]),
    ):
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{px} holds {x.shape[0]} images but {py} holds {y.shape[0]} labels; they must match. {hint}"
            )
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{paths[0]} has images of size {train_x.shape[1:]} but {paths[2]} of size "
            f"{test_x.shape[1:]}. {hint}"
        )
    num_classes = len(spec.class_names)
    check_labels(train_y, num_classes, str(paths[1]))
    check_labels(test_y, num_classes, str(paths[3]))
    if train_x.shape[0] <= spec.dev_size:
        raise DataError(
            f"{paths[0]} holds {train_x.shape[0]} images, too few to hold out {spec.dev_size} for dev. {hint}"
        )

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        # Converted in torch rather than numpy: torch's allocator maps fresh memory for the large
        # float array several times faster here (about 0.06 s instead of 0.5 s for MNIST train).
        # The copy makes the read-only view of the file's bytes writable for torch.
        images = torch.from_numpy(x.copy()).to(torch.float32).div_(255.0)
        images = images.reshape(x.shape[0], 1, *x.shape[1:])
        return Split(images, torch.from_numpy(y.astype(np.int64)))

    d = spec.dev_size
    full_train = to_split(train_x, train_y)
    # Each row named by its image file's own numbering: dev is that file's first d images.
    train_file = RowOrigins.counted([Path(paths[0]).name], [0], len(full_train))
    test_split = to_split(test_x, test_y)
    test_file = RowOrigins.counted([Path(paths[2]).name], [0], len(test_split))
    test_split = Split(test_split.inputs, test_split.labels, origins=test_file)
    return Dataset(
        name=spec.name,
        train=Split(full_train.inputs[d:], full_train.labels[d:], origins=train_file.take(slice(d, None))),
        dev=Split(full_train.inputs[:d], full_train.labels[:d], origins=train_file.take(slice(0, d))),
        test=test_split,
        class_names=list(spec.class_names),
        file_rows={"dev": torch.arange(d), "train": torch.arange(d, len(full_train))},
        training_file_size=len(full_train),
    )


def load_idx_spec(
    spec: IdxDatasetSpec,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
) -> Dataset:
    """Find (or download, with a bar on a terminal unless not ``progress``), verify and load an
    MNIST-style dataset described by ``spec``."""
    paths, looked = find_idx_files(spec, data_dir)
    if paths is None:
        cache = cache_dir(spec.name)
        if download:
            try:
                _download(spec, cache, progress)
            except DataError as exc:
                failure = f"Download into {cache} failed: {exc}"
            else:
                paths, _ = _probe(cache, spec)
                failure = "" if paths is not None else f"Download into {cache} left files missing."
        else:
            failure = f"Download is disabled (download=False); it would go into {cache}."
        if paths is None:
            names = ", ".join(f.name + ".gz" for f in spec.files)
            subdirs = " or ".join(f"DIR/{s}" for s in spec.subdirs)
            raise DataError(
                f"{spec.title} files not found. Looked in:\n  " + "\n  ".join(looked) + f"\n{failure}\n"
                f"To provide them, put {names} (gzip'd or not) in a folder DIR (or {subdirs}) "
                f"and pass --data-dir DIR or set {ENV_VAR}=DIR." + spec.extra_hint
            )
    return load_idx_dataset(paths, spec)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True, *, progress: bool = True
) -> Dataset:
    """MNIST: 55,000 train / 5,000 dev (the first 5,000 training images) / 10,000 test."""
    return load_idx_spec(MNIST, data_dir, download, progress=progress)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True, *, progress: bool = True
) -> Dataset:
    """Fashion-MNIST: 55,000 train / 5,000 dev (the first 5,000 training images) / 10,000 test."""
    return load_idx_spec(FASHION_MNIST, data_dir, download, progress=progress)


@register("mnist", yields="images", missing=lambda request: missing_idx_files(MNIST, request))
def _mnist(request: DataRequest) -> Dataset:
    return load_mnist(request.dir, request.download, progress=request.progress).limited(
        request.max_train_pairs
    )


@register("fashion-mnist", yields="images", missing=lambda request: missing_idx_files(FASHION_MNIST, request))
def _fashion_mnist(request: DataRequest) -> Dataset:
    return load_fashion_mnist(request.dir, request.download, progress=request.progress).limited(
        request.max_train_pairs
    )
