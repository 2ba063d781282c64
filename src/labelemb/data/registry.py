"""Data set names: each loader registers itself where it is defined, with what it yields.

What a data set yields (``images``; ``texts`` for text with one label each; ``token_pairs`` for
a parallel corpus) is what chooses the task that trains on it and the backbones that can read it,
so that no other module asks "is this text?". A loader whose data depends on its options (the
user's files) registers a function of its options instead of a fixed kind.

A data set's options are declared beside it as :class:`~labelemb.options.Options` schemas
(``options=(FilesOptions, TextOptions)``): each is one section of the config's ``data`` (its
``section``, ``data.files``), checked before any data is read and handed to the loader checked
(:meth:`DataRequest.options`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..options import Options, OptionsT
from ..registry import Registry

#: A loader: what a config asks of the data -> the data set.
Loader = Callable[["DataRequest"], Any]
L = TypeVar("L", bound=Loader)

#: What a data set yields: a fixed kind, or a function of its checked option sections (by section).
Yields = str | Callable[[dict[str, Options]], str]
#: Every named data set; an entry's ``info["yields"]`` says what it holds.
DATASETS: Registry[Loader] = Registry("data set")


@dataclass
class DataRequest:
    """What a run asks of its data: where to look, whether to download, how much to train on, the
    checked option sections of the data set (:meth:`options`), and what the rest of the run decides
    that reading the data must know."""

    dir: str | None = None
    download: bool = True
    #: Folders a relative file name is looked for in first (the config file's folder).
    search: tuple[str, ...] = ()
    #: Train on the first this many training examples only.
    max_train_pairs: int | None = None
    #: The data set's option sections, checked, by section name (absent: the schema's defaults).
    sections: dict[str, Options] = field(default_factory=dict)
    #: A pretrained text encoder's folder: texts become its tokenizer's ids, not word ids.
    text_encoder: str | None = None
    #: Dev and test sources of a text corpus longer than this are cut (the decoder's limit).
    eval_source_limit: int | None = 400
    progress: bool = True

    def options(self, schema: type[OptionsT]) -> OptionsT:
        """The section ``schema`` describes, as the config gave it, or the schema's defaults."""
        given = self.sections.get(schema.section)
        return given if isinstance(given, schema) else schema()


def register(
    name: str, *, yields: Yields, options: tuple[type[Options], ...] = (), **info: Any
) -> Callable[[L], L]:
    """Decorator on a loader ``(DataRequest) -> data set``: make it loadable as ``name``.
    ``yields`` is what the data set holds (``images``, ``texts`` or ``token_pairs``), or a function
    of its option sections that says it; ``options`` are the schemas of its config sections."""
    for schema in options:
        _check_section(schema)
    return DATASETS.register(name, yields=yields, options=tuple(options), **info)


def _check_section(schema: type[Options]) -> None:
    if not schema.section:
        raise ValueError(f"{schema.__name__} needs a section name (section: ClassVar[str] = ...)")
    taken = option_sections().get(schema.section)
    if taken is not None and taken is not schema:
        raise ValueError(
            f"data section {schema.section!r} is already {taken.__name__}'s; name {schema.__name__}'s another"
        )


def option_schemas(name: str) -> tuple[type[Options], ...]:
    """The option schemas of data set ``name``: the sections of ``data`` it reads."""
    return DATASETS.entry(dataset_key(name)).info["options"]


def option_sections() -> dict[str, type[Options]]:
    """Every registered data set's option sections, by section name."""
    return {schema.section: schema for entry in DATASETS.entries() for schema in entry.info["options"]}


def dataset_key(name: str) -> str:
    """The registered name of a data set written another way: ``Fashion_MNIST`` -> ``fashion-mnist``."""
    if name in DATASETS:
        return name
    key = name.strip().lower().replace("_", "-")
    return {"cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)


def dataset_yields(name: str, sections: dict[str, Options] | None = None) -> str:
    """What data set ``name`` holds (``images``, ``texts``, ``token_pairs``) when loaded with its
    option ``sections``; a did-you-mean if it is unknown."""
    yields = DATASETS.entry(dataset_key(name)).info["yields"]
    return yields if isinstance(yields, str) else yields(sections or {})


def data_fingerprint(name: str, request: DataRequest) -> str | None:
    """The content digest of what data set ``name`` would load for ``request``, computed without
    loading it, for a loader registered with ``fingerprint=`` (a function of the request); None
    for the others (named data sets check their own files' checksums), unless a ``data.clean``
    list cleans the training split: then the list's digest is part of it."""
    base = _registered_fingerprint(name, request)
    # A training split cleaned by a list of wrong labels (data.clean) is that list's content too.
    cleaning = request.sections.get("clean")
    return base if cleaning is None else cleaning.fingerprint(base, request)


def _registered_fingerprint(name: str, request: DataRequest) -> str | None:
    """The digest a loader's registered ``fingerprint=`` function gives for ``request``, or None."""
    compute = DATASETS.entry(dataset_key(name)).info.get("fingerprint")
    return None if compute is None else compute(request)


def missing_files(name: str, request: DataRequest) -> str | None:
    """What data set ``name`` lacks on this machine for ``request``, in one line with how to get it,
    found without reading or downloading anything; None when its files are here, or when it has no
    files to look for (it is bundled, or read as it loads: a registered ``missing=`` function of the
    request says it)."""
    find = DATASETS.entry(dataset_key(name)).info.get("missing")
    return None if find is None else find(request)


def load(name: str, request: DataRequest | None = None) -> Any:
    """Data set ``name`` as ``request`` asks: with its training split cleaned where a
    ``data.clean`` section asks it (:mod:`labelemb.data.cleaning`, after the run's noise)."""
    request = request or DataRequest()
    dataset = DATASETS.get(dataset_key(name))(request)
    cleaning = request.sections.get("clean")
    if cleaning is None:
        return dataset
    # The cleaned data's digest is built on the same base as data_fingerprint's, so that a finished
    # run of a data set without a registered digest (a hub set) reads back as itself.
    return cleaning.applied(dataset, request, _registered_fingerprint(name, request))
