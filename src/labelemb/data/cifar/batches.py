"""Reading CIFAR's python pickles: safe unpickling, then each file checked and the Dataset built.

Extracted files are checked for structure: every data file is a dict with ``data`` (N, 3072)
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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import DataError, Dataset, Split, check_labels
from .spec import CifarSpec

IMAGE_SHAPE = (3, 32, 32)
_ROW = 3 * 32 * 32


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


# ---------------------------------------------------------------- an extracted folder


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
