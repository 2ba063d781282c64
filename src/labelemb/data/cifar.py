"""CIFAR-10 and CIFAR-100 from the official python pickles (the paper's protocols cifar10-resnet8
and cifar100-resnet18: all 50,000 training images train, the 10,000 test images test, no dev split).

Search order, the first hit wins; in each place the extracted folder (``cifar-10-batches-py/`` or
``cifar-100-python/``, or the place itself if it holds the files directly) is tried before the
archive (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``):

1. the ``data_dir`` argument, then its subfolder ``cifar10/`` (``cifar100/``);
2. the ``LABELEMB_DATA`` environment variable, with the same subfolder;
3. the cache ``$XDG_CACHE_HOME/labelemb/<name>`` (default ``~/.cache``), into which the archive is
   downloaded from https://www.cs.toronto.edu/~kriz/ and extracted when ``download`` is true.

Verification:

- An archive must have the official size and md5 before a byte of it is unpickled. An archive in
  a user's folder is read in memory (that folder is never written to); one in the cache is
  extracted there, once, so that later loads read the extracted files.
- Extracted files are checked for structure: every data file is a dict with ``data`` (N, 3072)
  uint8 and N labels in range, and the meta file names exactly ``num_classes`` classes. When the
  set holds the official numbers of images (10,000 per CIFAR-10 batch; 50,000 / 10,000 for
  CIFAR-100) every file, meta included, must also have its official md5. A set with other counts
  (a subset, or a test fixture) loads with a warning, since it cannot reproduce the paper's numbers.

The files are pickles, and unpickling can run code: they are read with an unpickler that only
resolves the few globals a pickled numpy array needs (``_reconstruct``, ``ndarray``, ``dtype``, and
``_codecs.encode`` for latin-1, which Python 3's protocol-2 pickles use for bytes). Anything else is
refused with a DataError.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from .base import DataError, Dataset, Split, check_labels
from .download import download_from_mirrors
from .mnist import ENV_VAR, cache_dir, search_folders
from .registry import DataRequest, register

IMAGE_SHAPE = (3, 32, 32)
_ROW = 3 * 32 * 32
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CifarSpec:
    """What tells CIFAR-10 and CIFAR-100 apart: file names, pickle keys, counts and checksums.

    ``file_md5`` maps a file of the extracted folder to its official md5, enforced only when the
    set holds the official counts (see the module docstring).
    """

    name: str
    title: str
    folder: str
    archive: str
    archive_md5: str
    archive_size: int | None
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    file_counts: dict[str, int]
    file_md5: dict[str, str]
    mirrors: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)

    @property
    def files(self) -> tuple[str, ...]:
        """Every file the extracted folder must hold: data files, then the meta file."""
        return (*self.train_files, *self.test_files, self.meta_file)

    @property
    def subdirs(self) -> tuple[str, ...]:
        """Subfolders of data_dir / $LABELEMB_DATA that are searched too."""
        return (self.name,)

    @property
    def hint(self) -> str:
        """How to get a good copy, appended to every error about one of this dataset's files."""
        return (
            "Delete it and run again with download enabled to re-download it, or pass --data-dir "
            f"(or set {ENV_VAR}) to a folder with the original {self.archive} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html (or its extracted {self.folder}/)."
        )


CIFAR10 = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    archive_size=170_498_071,
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
    num_classes=10,
    file_counts={**{f"data_batch_{i}": 10_000 for i in range(1, 6)}, "test_batch": 10_000},
    # Batch md5s: the datasets-mila mirror's records of the official files; batches.meta: torchvision's.
    file_md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
)

CIFAR100 = CifarSpec(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    archive_size=169_001_437,
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key=b"fine_labels",
    names_key=b"fine_label_names",
    num_classes=100,
    file_counts={"train": 50_000, "test": 10_000},
    # torchvision's checksums of the extracted files.
    file_md5={
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
)


# ---------------------------------------------------------------- restricted unpickling


class _Refused(pickle.UnpicklingError):
    """A global (or codec) outside the allow-list: the file is not a plain CIFAR pickle."""


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(text, "latin1"); other codecs
    # (zlib, base64, ...) have no business in a CIFAR file.
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise _Refused(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(obj, encoding, errors)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    # The array reconstructor, taken from numpy itself so that it works on numpy 1 and 2; CIFAR's
    # Python 2 pickles name it numpy.core.multiarray, numpy 2 writes numpy._core.multiarray.
    reconstruct = np.zeros(1).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for builtins_name in ("builtins", "__builtin__"):
        allowed[(builtins_name, "bytes")] = bytes  # protocol 2 writes b"" as bytes()
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_ALLOWED_GLOBALS``; everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"global {module}.{name} is not allowed in a CIFAR file") from None


def unpickle_cifar(data: bytes, source: str, hint: str = "") -> Any:
    """Unpickle one CIFAR file's bytes as the official reader does (``encoding="bytes"``), safely.

    Only the globals needed to rebuild numpy arrays are resolved; any other global (os.system, ...)
    and any malformed or truncated stream raise DataError naming ``source``.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise DataError(
            f"{source}: refused to unpickle: {exc} (a CIFAR file needs nothing but numpy arrays, "
            f"lists, strings and numbers); this is not an original CIFAR file. {hint}".rstrip()
        ) from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
    ) as exc:
        # Truncation shows up as UnpicklingError or EOFError; a damaged array state as ValueError.
        raise DataError(
            f"{source}: not a readable CIFAR pickle (truncated or damaged): {type(exc).__name__}: {exc}. "
            f"{hint}".rstrip()
        ) from exc


# ---------------------------------------------------------------- parsing and verification


def _get(obj: dict, key: bytes, source: str, hint: str) -> Any:
    # Python 3 pickles of the same data may carry str keys; accept both spellings.
    for k in (key, key.decode("ascii")):
        if k in obj:
            return obj[k]
    raise DataError(f"{source}: has no {key.decode()!r} entry (keys: {sorted(map(str, obj))}). {hint}")


def parse_batch(obj: Any, spec: CifarSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one unpickled data file and return (images uint8 (N, 3072), labels int64 (N,))."""
    hint = spec.hint
    if not isinstance(obj, dict):
        raise DataError(f"{source}: holds a {type(obj).__name__}, expected a dict of a CIFAR batch. {hint}")
    data = _get(obj, b"data", source, hint)
    labels = _get(obj, spec.label_key, source, hint)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data)
        raise DataError(f"{source}: 'data' is a {what}, expected uint8 of shape (N, {_ROW}). {hint}")
    try:
        label_arr = np.asarray(labels)
        if label_arr.ndim != 1 or not (label_arr.size == 0 or np.issubdtype(label_arr.dtype, np.integer)):
            raise TypeError(f"{label_arr.dtype} array of shape {label_arr.shape}")
        label_arr = label_arr.astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{source}: {spec.label_key.decode()!r} is not a list of integers ({exc}). {hint}"
        ) from exc
    if label_arr.shape[0] != data.shape[0]:
        raise DataError(
            f"{source}: holds {data.shape[0]} images but {label_arr.shape[0]} labels; they must match. {hint}"
        )
    check_labels(label_arr, spec.num_classes, source)
    return data, label_arr


def parse_meta(obj: Any, spec: CifarSpec, source: str) -> list[str]:
    """Check the unpickled meta file and return the ``num_classes`` class names."""
    hint = spec.hint
    if not isinstance(obj, dict):
        raise DataError(f"{source}: holds a {type(obj).__name__}, expected the CIFAR meta dict. {hint}")
    names = _get(obj, spec.names_key, source, hint)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{source}: {spec.names_key.decode()!r} is not a list of strings. {hint}")
    if len(names) != spec.num_classes:
        raise DataError(f"{source}: names {len(names)} classes, {spec.title} has {spec.num_classes}. {hint}")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def build_cifar_dataset(contents: dict[str, bytes], spec: CifarSpec, sources: dict[str, str]) -> Dataset:
    """Parse and verify the bytes of every file of ``spec.files`` and build the Dataset.

    ``sources`` names each file for error messages (a path, or ``archive!member``). Per-file md5s
    are enforced when every data file holds its official count (see the module docstring); pass
    an empty ``spec.file_md5`` when the bytes come from an already verified archive.
    """
    hint = spec.hint
    parsed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in (*spec.train_files, *spec.test_files):
        parsed[name] = parse_batch(unpickle_cifar(contents[name], sources[name], hint), spec, sources[name])
    class_names = parse_meta(
        unpickle_cifar(contents[spec.meta_file], sources[spec.meta_file], hint), spec, sources[spec.meta_file]
    )

    official = all(parsed[n][0].shape[0] == spec.file_counts[n] for n in parsed)
    if official:
        for name in spec.files:
            want = spec.file_md5.get(name)
            if want is not None and (actual := _md5(contents[name])) != want:
                raise DataError(
                    f"{sources[name]}: md5 is {actual}, expected {want} (the official {name}); the file "
                    f"is damaged or not the original. {hint}"
                )
    else:
        counts = ", ".join(f"{n}: {parsed[n][0].shape[0]}" for n in parsed)
        official_counts = ", ".join(f"{n}: {c}" for n, c in spec.file_counts.items())
        warnings.warn(
            f"{spec.title} files hold other image counts than the official set ({counts}; official "
            f"{official_counts}); loading them unchecked by md5, results are not comparable to the paper's.",
            stacklevel=2,
        )

    def to_split(names: tuple[str, ...]) -> Split:
        data = np.concatenate([parsed[n][0] for n in names])
        labels = np.concatenate([parsed[n][1] for n in names])
        # Each row is the R plane, then G, then B, each 32 x 32 row-major: exactly (3, 32, 32).
        images = torch.from_numpy(data).to(torch.float32).div_(255.0).reshape(-1, *IMAGE_SHAPE)
        return Split(images, torch.from_numpy(labels))

    return Dataset(
        name=spec.name,
        train=to_split(spec.train_files),
        dev=None,
        test=to_split(spec.test_files),
        class_names=class_names,
    )


# ---------------------------------------------------------------- folders and archives


def _read_file(path: Path, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc}. {hint}") from exc


def load_cifar_folder(folder: str | os.PathLike[str], spec: CifarSpec) -> Dataset:
    """Load an extracted folder holding every file of ``spec.files``, verified as documented."""
    folder = Path(folder)
    contents = {name: _read_file(folder / name, spec.hint) for name in spec.files}
    return build_cifar_dataset(contents, spec, {name: str(folder / name) for name in spec.files})


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


def load_cifar_spec(
    spec: CifarSpec, data_dir: str | os.PathLike[str] | None = None, download: bool = True
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


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    """CIFAR-10: 50,000 train / 10,000 test images (3, 32, 32) in [0, 1], 10 classes, no dev split."""
    return load_cifar_spec(CIFAR10, data_dir, download)


def load_cifar100(data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    """CIFAR-100 (fine labels): 50,000 train / 10,000 test images, 100 classes, no dev split."""
    return load_cifar_spec(CIFAR100, data_dir, download)


@register("cifar10", yields="images")
def _cifar10(request: DataRequest) -> Dataset:
    return load_cifar10(request.dir, request.download).limited(request.max_train_pairs)


@register("cifar100", yields="images")
def _cifar100(request: DataRequest) -> Dataset:
    return load_cifar100(request.dir, request.download).limited(request.max_train_pairs)
