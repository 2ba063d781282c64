"""Datasets: the embedded 8x8 digits, MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, with verified loading."""

from __future__ import annotations

import os

from .base import DataError, Dataset, Split, check_labels
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .idx import read_idx
from .mnist import load_fashion_mnist, load_mnist

__all__ = [
    "DataError",
    "Dataset",
    "Split",
    "available_datasets",
    "check_labels",
    "dataset_key",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
]

_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")


def available_datasets() -> list[str]:
    """Names accepted by ``load_dataset``."""
    return list(_DATASETS)


def dataset_key(name: str) -> str:
    """The name ``load_dataset`` knows a data set by: ``Fashion_MNIST`` -> ``fashion-mnist``."""
    key = name.strip().lower().replace("_", "-")
    return {"cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    """Load a dataset by name; ``data_dir`` and ``download`` are ignored for "digits"."""
    key = dataset_key(name)
    if key == "digits":
        return load_digits()
    if key == "mnist":
        return load_mnist(data_dir, download)
    if key == "fashion-mnist":
        return load_fashion_mnist(data_dir, download)
    if key == "cifar10":
        return load_cifar10(data_dir, download)
    if key == "cifar100":
        return load_cifar100(data_dir, download)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(_DATASETS)}")
