"""Your own data (``data.name: files``): tables, image folders, arrays and parallel text from files.

Tables and image folders are read through Hugging Face ``datasets`` (local files offline; a hub
name where the network allows, cached). The config's ``data.files`` section names the format,
each split's file(s) and the input and label columns; what the input column holds decides the
task (:meth:`~labelemb.data.files.options.FilesOptions.yields`):

- ``text``: one label per text, the text-classification task (:mod:`labelemb.data.text.classes`),
  or with ``tags_column`` a set of tags per text (:mod:`labelemb.data.text.tagged`, read by
  :mod:`~labelemb.data.files.tag_sets`);
- ``images``: decoded once into a memory-mapped uint8 cache (:mod:`labelemb.data.image_cache`),
  image classification as for the named image sets;
- ``parallel``: two line-aligned files per split, the sequence-to-sequence task.

Labels may be strings or integers; the class names are the config's, a ``ClassLabel``'s, or the
training labels sorted. A data set without a dev split gets one carved from train, seeded and
stratified (tag sets: drawn at random). Each split keeps where each of its rows came from, its
file and its row number there, through the carve and ``max_train_pairs``
(:attr:`~labelemb.data.base.Split.origins`). Every problem is a
:class:`~labelemb.data.base.DataError` naming the file and row.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import torch

from ..base import DataError, Dataset, Split
from ..image_cache import cached_images
from ..label_noise.noisy import carried_noise
from ..origins import RowOrigins
from ..registry import DataRequest, register
from ..text.classes import TextClassDataset, text_class_dataset
from ..text.options import TextOptions, corpus_arguments
from ..text.sequences import load_text_dataset
from ..text.tagged import TaggedTextDataset
from .digest import files_fingerprint, fingerprint
from .labels import class_ids, clean_class_ids, is_missing
from .memo import remembered
from .options import FilesOptions, files_yields
from .paths import SPLITS, cache_root, data_name, find_file, split_files
from .rows import Column
from .tables import read_splits
from .tag_sets import random_split, tag_sets

logger = logging.getLogger(__name__)


@register(
    "files",
    yields=files_yields,
    options=(FilesOptions, TextOptions),
    fingerprint=lambda request: files_fingerprint(request),
)
def load_files(request: DataRequest) -> Any:
    """The data set ``data.files`` describes (see the module docstring); a text data set read
    before in this process from the same options and the same bytes is a copy of that one
    (:mod:`~labelemb.data.files.memo`)."""
    return remembered(request, lambda: read_files(request))


def read_files(request: DataRequest) -> Any:
    """The data set ``data.files`` describes, read from its files."""
    options = request.options(FilesOptions)
    files = options.model_dump()
    fmt = options.format
    if fmt == "parallel":
        return _parallel_corpus(files, request)
    kind = "images" if options.yields() == "images" else "text"
    columns = read_splits(files, kind, request)
    tagged = options.tags_column is not None
    if tagged:
        class_names, ids = tag_sets(columns, options.class_names, options.tag_separator, options.tags_column)
    else:
        class_names, ids = class_ids(columns, files.get("class_names"))
    clean_column = options.clean_label_column
    clean = clean_class_ids(columns, files.get("class_names"), clean_column) if clean_column else {}
    details: dict[str, Any] = {"format": fmt, "fingerprint": fingerprint(files, request)}
    if columns.get("dev") is None and options.dev_fraction > 0:
        details["dev_carved_from_train"] = _carve_dev(columns, ids, clean, options, tagged)
    if request.max_train_pairs is not None:
        columns["train"] = _take(columns["train"], np.arange(min(request.max_train_pairs, len(ids["train"]))))
        for labels in (ids, clean) if clean else (ids,):
            labels["train"] = labels["train"][: request.max_train_pairs]
    if "test" in clean:
        # The test split is judged on the true labels.
        ids["test"] = clean.pop("test")
    details["examples"] = {split: len(ids[split]) for split in SPLITS if ids.get(split) is not None}
    name = data_name(files)
    if kind == "images":
        dataset = _image_dataset(name, columns, ids, class_names, files, request, details)
    else:
        dataset = _text_dataset(name, columns, ids, class_names, request, details, tagged)
    if clean_column:
        dataset.noise = carried_noise(dataset, clean, f"column {clean_column}")
        dataset.details = {**dataset.details, "noise": dataset.noise.description}
    return dataset


# ---------------------------------------------------------------------------------------- labels


def _carve_dev(
    columns: dict[str, Column | None],
    ids: dict[str, np.ndarray | None],
    clean: dict[str, np.ndarray],
    options: FilesOptions,
    tagged: bool,
) -> dict[str, Any]:
    """Move ``dev_fraction`` of train's rows (and their labels) to a dev split; what a run records of it."""
    fraction, seed = options.dev_fraction, options.dev_seed
    train = columns["train"]
    assert train is not None
    # Stratified by the labels a user's dev split would have: the ones trained on. A tag set is
    # no one class, so tag sets are drawn at random.
    carve = random_split if tagged else stratified_split
    train_part, dev_part = carve(ids["train"], fraction, seed)
    _check_carved(train, len(train_part), len(dev_part), fraction, tagged)
    columns["dev"], columns["train"] = _take(train, dev_part), _take(train, train_part)
    for labels in (ids, clean) if clean else (ids,):
        labels["dev"], labels["train"] = labels["train"][dev_part], labels["train"][train_part]
    return {"fraction": fraction, "seed": seed, **({"stratified": False} if tagged else {})}


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, dev indices): ``fraction`` of each class (rounded, and at least one example
    of each class stays in train) drawn with ``seed``, each part in its original order."""
    generator = np.random.default_rng(seed)
    dev = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        # Every class keeps at least one training row.
        take = min(int(round(fraction * len(members))), len(members) - 1)
        dev.append(generator.permutation(members)[:take])
    dev_index = np.sort(np.concatenate(dev)) if dev else np.array([], dtype=np.int64)
    train_index = np.setdiff1d(np.arange(len(labels)), dev_index)
    return train_index, dev_index


def _check_carved(train: Column, kept: int, carved: int, fraction: float, tagged: bool = False) -> None:
    """Refuse a carve that leaves dev without a row, before anything trains (train keeps a row of
    every class: :func:`stratified_split`; of every tag: :func:`random_split`)."""
    if carved == 0:
        # round(fraction * n) is 0 up to n = 0.5 / fraction (a half rounds to even, 0), and a class
        # of one example gives none.
        smallest = max(math.floor(0.5 / fraction) + 1, 2)
        needs = (
            f"a draw needs at least {smallest} rows, and a row holding a tag no other row has stays in train"
            if tagged
            else f"a class needs at least {smallest} rows to give one"
        )
        raise DataError(
            f"{train.files[0]}: data.files.dev_fraction {fraction} of the {kept} training rows carves no "
            f"dev row ({needs}); give a dev file as "
            "data.files.dev, raise data.files.dev_fraction, or set it to 0 to train without a dev split"
        )


def _take(column: Column, index: np.ndarray) -> Column:
    inputs = (
        column.inputs[index] if isinstance(column.inputs, np.ndarray) else [column.inputs[i] for i in index]
    )
    labels = [column.labels[i] for i in index]
    # Rows keep the name of where they came from.
    return _Renamed(inputs, labels, column, index)


class _Renamed(Column):
    """A subset of a column whose rows keep the names of their original rows."""

    def __init__(self, inputs: Any, labels: list[Any], parent: Column, index: np.ndarray) -> None:
        super().__init__(inputs, labels, parent.files, parent.starts, parent.class_names, parent.layouts)
        if parent.clean_labels is not None:
            self.clean_labels = [parent.clean_labels[i] for i in index]
        self.parent, self.index = parent, index

    def row_name(self, index: int) -> str:
        return self.parent.row_name(int(self.index[index]))

    def origins(self) -> RowOrigins:
        return self.parent.origins().take(self.index)


# ---------------------------------------------------------------------------------------- building


def _image_dataset(
    name: str,
    columns: dict[str, Column | None],
    ids: dict[str, np.ndarray | None],
    class_names: list[str],
    files: dict[str, Any],
    request: DataRequest,
    details: dict[str, Any],
) -> Dataset:
    size = tuple(files["image_size"]) if files.get("image_size") else None
    channels = files.get("channels")
    cache = cache_root(files.get("cache_dir")) / "images"
    splits: dict[str, Split | None] = {}
    for split in SPLITS:
        column = columns.get(split)
        if column is None:
            splits[split] = None
            continue
        sources = [_image_source(value) for value in column.inputs]
        images = cached_images(
            sources,
            names=[_image_name(value, column, i) for i, value in enumerate(column.inputs)],
            channels=channels,
            size=size,
            cache_dir=cache,
            label=f"decoding {split} images",
            progress=request.progress,
        )
        # Every split as the first: the channels and size train decided.
        channels, size = int(images.shape[1]), (int(images.shape[2]), int(images.shape[3]))
        splits[split] = Split(images, torch.from_numpy(ids[split]), origins=_origins(column, files["format"]))
    details["image_shape"] = [channels, *size]
    return Dataset(name, splits["train"], splits["dev"], splits["test"], class_names, details=details)


def _origins(column: Column, fmt: str) -> RowOrigins:
    """Where each row of ``column`` came from: an image folder's rows are its image files, any
    other's are rows of the split's files (see :mod:`labelemb.data.origins`)."""
    if fmt == "imagefolder":
        paths = [value.get("path") if isinstance(value, dict) else None for value in column.inputs]
        if all(paths):
            return RowOrigins.each_a_file([str(path) for path in paths])
    return column.origins()


def _image_source(value: Any) -> Any:
    if isinstance(value, dict):  # a datasets Image feature, not decoded: bytes, or a file's path
        return value.get("bytes") or value.get("path")
    return value


def _image_name(value: Any, column: Column, index: int) -> str:
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    if isinstance(value, str):  # a path in a table: the row, and the file it names
        return f"{column.row_name(index)}, image {value}"
    return column.row_name(index)


def _text_dataset(
    name: str,
    columns: dict[str, Column | None],
    ids: dict[str, np.ndarray | None],
    class_names: list[str],
    request: DataRequest,
    details: dict[str, Any],
    tagged: bool,
) -> Any:
    text = request.options(TextOptions)
    texts: dict[str, list[str] | None] = {}
    for split in SPLITS:
        column = columns.get(split)
        texts[split] = None if column is None else _checked_texts(column)
    dataset = text_class_dataset(
        name,
        texts,
        ids,
        class_names,
        tokenizer=text.tokenizer or "words",
        vocabulary_size=text.vocabulary_size,
        max_text_tokens=text.max_text_tokens,
        text_encoder=request.text_encoder,
        dataset_type=TaggedTextDataset if tagged else TextClassDataset,
    )
    for split in SPLITS:
        column, held = columns.get(split), getattr(dataset, split)
        if column is not None and held is not None:
            setattr(dataset, split, dataclasses.replace(held, origins=column.origins()))
    if isinstance(dataset, TaggedTextDataset):
        details["tag_sets"] = dataset.tag_counts()
    dataset.details = details
    return dataset


def _checked_texts(column: Column) -> list[str]:
    texts = []
    for i, value in enumerate(column.inputs):
        if is_missing(value):
            raise DataError(f"{column.row_name(i)}: the text is empty; fill it in or remove the row")
        if not isinstance(value, str):
            raise DataError(
                f"{column.row_name(i)}: the text is {type(value).__name__} ({value!r}), not text; "
                "fill it in or remove the row (or name the text column as data.files.input_column)"
            )
        texts.append(value)
    return texts


def _parallel_corpus(files: dict[str, Any], request: DataRequest) -> Any:
    pairs = {}
    for split in SPLITS:
        pair = split_files(files, split)
        if len(pair) != 2:
            raise DataError(
                f"data.files.{split} must be [source file, target file] for format parallel "
                f"(e.g. [{split}.en, {split}.de]), got {files.get(split)!r}"
            )
        pairs[split] = tuple(find_file(p, request, f"{split} file") for p in pair)
    dataset = load_text_dataset(
        data_name(files),
        None,
        max_train_pairs=request.max_train_pairs,
        split_files=pairs,
        metric=files.get("metric", "bleu"),
        **corpus_arguments(request),
    )
    dataset.details = {"format": "parallel", "fingerprint": fingerprint(files, request)}
    return dataset
