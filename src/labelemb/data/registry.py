"""Data set names: each loader registers itself where it is defined, with what it yields.

What a data set yields (``images``; ``texts`` for text with one label each; ``token_pairs`` for
a parallel corpus) is what chooses the task that trains on it and the backbones that can read it,
so that no other module asks "is this text?". A loader whose data depends on its options (the
user's files) registers a function of its options instead of a fixed kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..registry import Registry

#: A loader: what a config asks of the data -> the data set.
Loader = Callable[["DataRequest"], Any]
L = TypeVar("L", bound=Loader)

#: What a data set yields: a fixed kind, or a function of the request's options.
Yields = str | Callable[[dict[str, Any]], str]
#: Every named data set; an entry's ``info["yields"]`` says what it holds.
DATASETS: Registry[Loader] = Registry("data set")


@dataclass
class DataRequest:
    """What a run asks of its data: where to look, whether to download, how much to train on,
    and the options of its kind (a text corpus's tokeniser, vocabulary and length limits)."""

    dir: str | None = None
    download: bool = True
    #: Folders a relative file name is looked for in first (the config file's folder).
    search: tuple[str, ...] = ()
    #: Train on the first this many training examples only.
    max_train_pairs: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def register(name: str, *, yields: Yields, **info: Any) -> Callable[[L], L]:
    """Decorator on a loader ``(DataRequest) -> data set``: make it loadable as ``name``.
    ``yields`` is what the data set holds (``images``, ``texts`` or ``token_pairs``), or a function
    of the request's options that says it."""
    return DATASETS.register(name, yields=yields, **info)


def dataset_key(name: str) -> str:
    """The registered name of a data set written another way: ``Fashion_MNIST`` -> ``fashion-mnist``."""
    if name in DATASETS:
        return name
    key = name.strip().lower().replace("_", "-")
    return {"cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)


def dataset_yields(name: str, options: dict[str, Any] | None = None) -> str:
    """What data set ``name`` holds (``images``, ``texts``, ``token_pairs``) when loaded with
    ``options``; a did-you-mean if it is unknown."""
    yields = DATASETS.entry(dataset_key(name)).info["yields"]
    return yields if isinstance(yields, str) else yields(options or {})


def data_fingerprint(name: str, request: DataRequest) -> str | None:
    """The content digest of what data set ``name`` would load for ``request``, computed without
    loading it, for a loader registered with ``fingerprint=`` (a function of the request); None
    for the others (named data sets check their own files' checksums)."""
    compute = DATASETS.entry(dataset_key(name)).info.get("fingerprint")
    return None if compute is None else compute(request)


def load(name: str, request: DataRequest | None = None) -> Any:
    """Data set ``name`` as ``request`` asks."""
    return DATASETS.get(dataset_key(name))(request or DataRequest())
