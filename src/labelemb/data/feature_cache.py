"""A frozen backbone's features of one split, computed once and kept on disk as safetensors.

The file is named by a sha256 key of everything the features depend on: the backbone's name and
options, every tensor of its state (weights and batch-norm statistics), the split's inputs, and
the preprocessing (normalisation, precision). It holds one float32 ``(N, d)`` tensor and, in its
metadata, the key and a sha256 of the tensor's bytes. A file whose key, row count or checksum
disagrees (copied from another cache, truncated, a flipped bit) is rebuilt with a warning, never
read as features. It is built once and written whole or not at all (:mod:`labelemb.data.cache_files`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..aligned import aligned
from .cache_files import build_once, write_atomically

#: Bump when what a key covers or how features are stored changes, so old files are not read as new.
FORMAT_VERSION = 1
FEATURES_KEY = "features"
_WHAT = "feature cache"


def backbone_digest(description: dict[str, Any], state: dict[str, torch.Tensor]) -> hashlib._Hash:
    """The running sha256 of a backbone: its description (name, options, preprocessing; JSON) and
    every tensor of its state dict. Each split's key continues a copy of it (:func:`split_key`)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT_VERSION, **description}, sort_keys=True, default=str).encode())
    for name, tensor in state.items():
        update_with_tensor(digest, name, tensor)
    return digest


def split_key(backbone: hashlib._Hash, inputs: Iterable[torch.Tensor]) -> str:
    """The cache key of one split's features: the backbone's digest continued with its inputs."""
    digest = backbone.copy()
    for i, tensor in enumerate(inputs):
        update_with_tensor(digest, f"input {i}", tensor)
    return digest.hexdigest()


def update_with_tensor(digest: hashlib._Hash, name: str, tensor: torch.Tensor) -> None:
    """Feed a tensor's name, dtype, shape and bytes to ``digest``."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}\n".encode())
    digest.update(memoryview(flat.view(torch.uint8).numpy()))


def cached_features(
    cache_dir: Path,
    key: str,
    count: int,
    compute: Callable[[], torch.Tensor],
    *,
    label: str = "features",
    progress: bool = True,
) -> tuple[torch.Tensor, bool]:
    """The ``(count, d)`` features of key ``key``: read from ``cache_dir``, or computed with
    ``compute()`` and written there. Returns the features and whether they were read."""
    path = feature_file(cache_dir, key)
    features, _ = read_features(path, key, count)
    if features is not None:
        return features, True  # read without the lock: a cache file is only ever replaced whole
    return build_once(
        path,
        _WHAT,
        partial(_read_under_lock, path, key, count, label),
        partial(_compute_and_write, path, key, count, compute, label),
        progress=progress,
    )


def feature_file(cache_dir: Path, key: str) -> Path:
    """The file in ``cache_dir`` that holds, or will hold, the features of ``key``."""
    return cache_dir / f"features-{key[:32]}.safetensors"


def _read_under_lock(path: Path, key: str, count: int, label: str) -> torch.Tensor | None:
    """The features another process built while this one waited for the lock; None, with a
    warning where a file is there but is not them, when they are to be computed."""
    features, problem = read_features(path, key, count)
    if problem is not None:
        # Level 4: the warning names the caller of cached_features, past build_once.
        warnings.warn(f"feature cache {path} {problem}: computing the {label} again", stacklevel=4)
    return features


def _compute_and_write(
    path: Path, key: str, count: int, compute: Callable[[], torch.Tensor], label: str
) -> torch.Tensor:
    """``compute()``'s features, checked to be ``(count, d)``, as float32 on the CPU, written to ``path``."""
    features = compute().detach().to("cpu", torch.float32).contiguous()
    if features.dim() != 2 or features.shape[0] != count:
        raise ValueError(f"{label}: expected ({count}, d) features, got {tuple(features.shape)}")
    write_features(path, key, features)
    return features


def read_features(path: Path, key: str, count: int) -> tuple[torch.Tensor | None, str | None]:
    """The features stored at ``path`` if they are the ones of ``key``; else None and what is wrong
    (None as well when there is no file)."""
    if not path.exists():
        return None, None
    try:
        with safe_open(path, framework="pt") as stored:
            metadata = stored.metadata() or {}
            if metadata.get("key") != key or FEATURES_KEY not in stored.keys():
                return None, "was built for another backbone, data or preprocessing"
            features = stored.get_tensor(FEATURES_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        return None, f"is damaged or unreadable ({exc})"
    if features.dim() != 2 or features.shape[0] != count or features.dtype != torch.float32:
        return None, f"holds {features.dtype} {tuple(features.shape)}, not float32 ({count}, d)"
    if metadata.get("sha256") != _tensor_sha256(features):
        return None, "is damaged (its content does not match its checksum)"
    return aligned(features), None


def write_features(path: Path, key: str, features: torch.Tensor) -> None:
    """Write ``features`` to ``path``, whole or not at all (``cache_files.write_atomically``)."""
    blob = save({FEATURES_KEY: features}, metadata={"key": key, "sha256": _tensor_sha256(features)})
    write_atomically(path, _WHAT, lambda handle: handle.write(blob))


def _tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(memoryview(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())).hexdigest()
