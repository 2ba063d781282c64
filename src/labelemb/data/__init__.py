"""Data sets: the embedded 8x8 digits, MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, and parallel text
corpora, each registered by name with what it yields (:mod:`labelemb.data.registry`).

Every module of this package and of its subpackages (``files/``: your files; ``cifar/``;
``text/``: corpora and text as ids) is imported here, so a loader's ``@register`` is all it takes
to add a data set.
"""

from __future__ import annotations

import os

from ..registry import import_modules

# isort: off
# The image sets are imported first and in this order: it is the order their names are listed in.
from .digits import load_digits
from .mnist import load_fashion_mnist, load_mnist
from .cifar.loader import load_cifar10, load_cifar100

# isort: on
from .base import DataError, Dataset, Split, check_labels
from .idx import read_idx
from .registry import DATASETS, DataRequest, dataset_key, dataset_yields, load, register

import_modules(__name__, __path__)

__all__ = [
    "DATASETS",
    "DataError",
    "DataRequest",
    "Dataset",
    "Split",
    "available_datasets",
    "check_labels",
    "dataset_key",
    "dataset_yields",
    "load",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "register",
]


def available_datasets() -> list[str]:
    """Names of the image data sets ``load_dataset`` reads, in the order they are registered."""
    return [name for name in DATASETS.names(sort=False) if DATASETS.entry(name).info["yields"] == "images"]


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    """Load an image data set by name; ``data_dir`` and ``download`` are ignored for "digits"."""
    key = dataset_key(name)
    if key not in available_datasets():
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return load(key, DataRequest(dir=None if data_dir is None else str(data_dir), download=download))
