"""The inputs of a shift evaluation: a test split's images corrupted, once, and its texts.

Corrupting a set costs more than scoring a small network on it, so each corrupted set is kept in
the cache folder (``data.files.cache_dir``, $LABELEMB_CACHE or ``~/.cache/labelemb``, under
``corrupted/``), named by a key of everything it depends on (the corruption's definition, the
severity, the seed and the clean images' bytes) and checked as the feature cache checks its files
(:mod:`labelemb.data.feature_cache`): every run of a data set reads the set the first one made.
They are large (MNIST's 34 conditions: 1.07 GB, float32): :func:`making_note` says how large before
they are made, and ``labelemb cache clear corrupted`` (:mod:`labelemb.data.caches`) deletes them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.base import DataError, as_float_images
from ..data.caches import format_size
from ..data.corruptions import corrupt
from ..data.corruptions.suites import Condition
from ..data.feature_cache import cached_features, feature_file, update_with_tensor
from ..data.files.options import FilesOptions
from ..data.files.paths import cache_root, find_file
from ..data.registry import DataRequest
from ..predict.reading import read_rows
from ..predict.source import PredictError

#: Bump when how a corrupted set is made or stored changes.
CORRUPTED_FORMAT = 1


def corrupted_images(
    images: Tensor, condition: Condition, seed: int, cache_dir: str | None = None, *, key: str | None = None
) -> Tensor:
    """``images`` (N, C, H, W) corrupted by ``condition`` with ``seed``: read from the cache, or
    made and written there (``key``: its :func:`corrupted_key`, where the caller has it already)."""
    clean = as_float_images(images)
    flat, _ = cached_features(
        corrupted_folder(cache_dir),
        key or corrupted_key(clean, condition, seed),
        len(clean),
        lambda: corrupt(clean, condition.name, condition.severity, seed=seed).reshape(len(clean), -1),
        label=f"{condition.key} images",
        progress=False,
    )
    return flat.reshape(clean.shape)


def corrupted_key(images: Tensor, condition: Condition, seed: int) -> str:
    """The cache key of ``images`` corrupted by ``condition`` with ``seed``: the corruption's
    definition, the severity, the seed and the clean images' bytes."""
    digest = hashlib.sha256(f"corrupted {CORRUPTED_FORMAT}|{condition.key}|{seed}".encode())
    digest.update(condition.corruption.definition().encode())
    update_with_tensor(digest, "clean", as_float_images(images))
    return digest.hexdigest()


def corrupted_folder(cache_dir: str | None = None) -> Path:
    """Where corrupted sets are kept: ``corrupted/`` in the cache root."""
    return cache_root(cache_dir) / "corrupted"


def making_note(images: Tensor, keys: dict[Condition, str], cache_dir: str | None = None) -> str | None:
    """What making the corrupted sets of ``keys`` that the cache lacks will leave on disk, to say
    before making them (the one-time cost of a data set's shift), or None where none is lacking."""
    folder = corrupted_folder(cache_dir)
    lacking = [key for key in keys.values() if not feature_file(folder, key).exists()]
    if not lacking:
        return None
    size = len(lacking) * images.numel() * 4  # float32; each file's header adds a few hundred bytes
    return (
        f"making {len(lacking)} corrupted cop{'y' if len(lacking) == 1 else 'ies'} of the test split, "
        f"kept for later runs of this data: about {format_size(size)} in {folder} "
        "(labelemb cache clear corrupted deletes them)"
    )


def test_texts(trained: Any, request: DataRequest, class_names: list[str]) -> tuple[list[str], Tensor]:
    """The texts of a text run's test split and their labels, read from its test file as ``labelemb
    predict`` reads a table; a :class:`PredictError` for a run whose test texts are not a file."""
    config = trained.config
    files = config.section(FilesOptions)
    if config.data.name != "files" or not files.test:
        raise PredictError(
            f"text perturbations read the run's test texts from its test file (data.files.test); "
            f"{trained.origin} reads data set {config.data.name!r}: train on its files to shift it"
        )
    texts: list[str] = []
    names: list[str] = []
    for written in files.test if isinstance(files.test, list) else [files.test]:
        try:
            path = find_file(str(written), request, "test file")
        except DataError as error:
            raise PredictError(str(error)) from None
        rows = read_rows(Path(path), trained)
        if rows.labels is None:
            raise PredictError(f"{path} has no label column: a shift evaluation needs each text's label")
        texts.extend(rows.items)
        names.extend(rows.labels)
    index = {name: i for i, name in enumerate(class_names)}
    return texts, torch.tensor([index[name] for name in names], dtype=torch.int64)
