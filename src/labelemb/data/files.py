"""Your own data (``data.name: files``): tables, image folders, arrays and parallel text from files.

Tables and image folders are read through Hugging Face ``datasets`` (local files offline; a hub
name where the network allows, cached). The config's ``data.files`` section names the format,
each split's file(s) and the input and label columns; what the input column holds decides the
task (:func:`files_yields`):

- ``text``: one label per text, the text-classification task (:mod:`labelemb.data.text_classes`);
- ``images``: decoded once into a memory-mapped uint8 cache (:mod:`labelemb.data.image_cache`),
  image classification as for the named image sets;
- ``parallel``: two line-aligned files per split, the sequence-to-sequence task.

Labels may be strings or integers; the class names are the config's, a ``ClassLabel``'s, or the
training labels sorted. A data set without a dev split gets one carved from train, seeded and
stratified. Every problem is a :class:`~labelemb.data.base.DataError` naming the file and row.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DataError, Dataset, Split
from .cache_files import WRITABLE_HINT, make_folder
from .registry import DataRequest, register
from .table_labels import class_ids, is_missing
from .table_rows import Column, csv_header, explain_unreadable, repeated_columns

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
#: The split names a saved or hub data set is read under when the config names none.
DEFAULT_SPLIT_NAMES = {"train": ("train",), "dev": ("validation", "dev", "valid"), "test": ("test",)}
#: Default column names, tried in order.
INPUT_COLUMNS = {"text": ("text", "sentence", "content"), "images": ("image", "img")}
LABEL_COLUMNS = ("label", "labels")
#: The ``datasets`` builder of each table format.
BUILDERS = {"csv": "csv", "json": "json", "parquet": "parquet", "imagefolder": "imagefolder"}
#: Image file endings Hugging Face's imagefolder reads; anything else in an image folder is left out.
IMAGE_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def files_yields(options: dict[str, Any]) -> str:
    """What the files of ``options`` (the ``data.files`` section) hold: images, texts or token pairs."""
    files = options.get("files") or {}
    kind = files.get("inputs")
    if files.get("format") == "parallel":
        return "token_pairs"
    if kind is None:
        kind = "images" if files.get("format") in ("imagefolder", "npz") else "text"
    return "images" if kind == "images" else "texts"


@register("files", yields=files_yields, fingerprint=lambda request: files_fingerprint(request))
def load_files(request: DataRequest) -> Any:
    """The data set ``data.files`` describes (see the module docstring)."""
    files = dict(request.options.get("files") or {})
    fmt = files.get("format", "csv")
    if fmt == "parallel":
        return _parallel_corpus(files, request)
    kind = "images" if files_yields(request.options) == "images" else "text"
    columns = read_splits(files, kind, request)
    class_names, ids = class_ids(columns, files.get("class_names"))
    details: dict[str, Any] = {"format": fmt, "fingerprint": fingerprint(files, request)}
    dev_fraction, dev_seed = files.get("dev_fraction", 0.1), files.get("dev_seed", 0)
    if columns.get("dev") is None and dev_fraction > 0:
        train_part, dev_part = stratified_split(ids["train"], dev_fraction, dev_seed)
        _check_carved(columns["train"], len(train_part), len(dev_part), dev_fraction)
        columns["dev"], columns["train"] = (
            _take(columns["train"], dev_part),
            _take(columns["train"], train_part),
        )
        ids["dev"], ids["train"] = ids["train"][dev_part], ids["train"][train_part]
        details["dev_carved_from_train"] = {"fraction": dev_fraction, "seed": dev_seed}
    if request.max_train_pairs is not None:
        columns["train"] = _take(columns["train"], np.arange(min(request.max_train_pairs, len(ids["train"]))))
        ids["train"] = ids["train"][: request.max_train_pairs]
    details["examples"] = {split: len(ids[split]) for split in SPLITS if ids.get(split) is not None}
    name = _data_name(files)
    if kind == "images":
        return _image_dataset(name, columns, ids, class_names, files, request, details)
    return _text_dataset(name, columns, ids, class_names, request, details)


# ---------------------------------------------------------------------------------------- finding


def find_file(name: str, request: DataRequest, what: str) -> Path:
    """``name`` as given if absolute, else the first of: the config's folder, ``data.dir``,
    ``$LABELEMB_DATA`` that holds it; a DataError naming every place searched if none does."""
    path = Path(name).expanduser()
    if path.is_absolute():
        if path.exists():
            return path
        raise DataError(f"{what} {path} does not exist; fix the path in data.files")
    roots = [*request.search, request.dir, os.environ.get("LABELEMB_DATA")]
    places = [Path(root) / path for root in roots if root]
    for place in places:
        if place.exists():
            return place
    searched = ", ".join(str(place) for place in places) or str(path)
    raise DataError(
        f"{what} {name} not found (looked for {searched}); give its path relative to the config file, "
        "or pass its folder as --data-dir (data.dir) or $LABELEMB_DATA"
    )


def _split_files(files: dict[str, Any], split: str) -> list[str]:
    given = files.get(split)
    if given is None:
        return []
    return [given] if isinstance(given, str) else list(given)


def _data_name(files: dict[str, Any]) -> str:
    """What a run calls the data: a saved folder's or hub set's name, else the train file's folder."""
    if files.get("path"):
        return Path(str(files["path"])).name.split(".")[0] or "files"
    first = Path(str((_split_files(files, "train") or ["files"])[0]))
    return first.resolve().parent.name or first.name.split(".")[0]


# ---------------------------------------------------------------------------------------- reading


def read_splits(files: dict[str, Any], kind: str, request: DataRequest) -> dict[str, Column | None]:
    """Each split's inputs and raw labels, read as ``files["format"]`` says."""
    fmt = files.get("format", "csv")
    if fmt == "npz":
        return _npz_splits(files, request)
    if fmt in ("disk", "hub"):
        return _named_splits(files, kind, request)
    if not _split_files(files, "train") or not _split_files(files, "test"):
        raise DataError(
            f"data.files (format {fmt}) needs the files of train and test (data.files.train, "
            "data.files.test); dev is optional (carved from train by data.files.dev_fraction)"
        )
    return {
        split: _read_files(files, kind, split, request) if _split_files(files, split) else None
        for split in SPLITS
    }


def _read_files(files: dict[str, Any], kind: str, split: str, request: DataRequest) -> Column:
    fmt = files.get("format", "csv")
    parts = []
    for name in _split_files(files, split):
        path = find_file(name, request, f"{split} file")
        if fmt == "imagefolder":
            _check_image_folder(path)
        elif path.is_dir():
            raise DataError(f"{split} file {path} is a folder, not a {fmt} file; name the file itself")
        if fmt == "csv":
            _check_header(path, files, kind)
        table = _load_table(fmt, path, request)
        inputs, labels, names = _columns_of(table, files, kind, str(path))
        if kind == "images" and fmt != "imagefolder":
            # A table's image paths are its own: beside it, wherever the command runs.
            inputs = [_beside(value, path.parent) for value in inputs]
        parts.append((str(path), fmt if fmt in ("csv", "json") else "rows", (inputs, labels, names)))
    return _joined(parts)


def _load_table(fmt: str, path: Path, request: DataRequest) -> Any:
    datasets = _datasets()
    data_files = str(path / "**") if fmt == "imagefolder" else str(path)
    cache = _table_cache(path, request)
    # A label or text spelt NA, null or None is what it says, not a missing value.
    reader_options = {"keep_default_na": False} if fmt == "csv" else {}
    try:
        table = datasets.load_dataset(
            BUILDERS[fmt],
            data_files={"rows": data_files},
            split="rows",
            cache_dir=str(cache),
            **reader_options,
        )
    except Exception as error:  # datasets wraps the parser's error (pandas, pyarrow) in its own
        raise DataError(_unreadable(fmt, path, error, cache)) from None
    if fmt == "imagefolder":
        table = table.cast_column(_image_column(table), datasets.Image(decode=False))
    return table


def _table_cache(path: Path, request: DataRequest) -> Path:
    """The Arrow cache of one table, in a folder named by the file's content: ``datasets`` finds
    its cache by path and modification time, so a file replaced by other rows under the same time
    (``cp -p``, ``git checkout``, ``rsync -t``) would otherwise train on the old rows."""
    cache = cache_root(request.options.get("files") or {}) / "hf" / _path_digest(path).hex()[:24]
    make_folder(cache, "table cache")
    return cache


def _unreadable(fmt: str, path: Path, error: BaseException, cache: Path) -> str:
    """What went wrong reading ``path``: the cache folder, the file's line, or the reader's words."""
    inner = _innermost_error(error)
    where = getattr(inner, "filename", None)
    if isinstance(inner, OSError) and where and Path(str(where)).is_relative_to(cache):
        return f"cannot write to the table cache folder {cache} ({inner.strerror or inner}); {WRITABLE_HINT}"
    explained = explain_unreadable(fmt, path)
    if explained:
        return f"{path}{', ' if explained.startswith('line ') else ': '}{explained}"
    return f"{path} cannot be read as {fmt}: {_describe(inner)}"


def _check_header(path: Path, files: dict[str, Any], kind: str) -> None:
    """A CSV header that names a column it reads twice is refused; other repeats are a warning."""
    repeated = repeated_columns(csv_header(path))
    read = {
        *([files["input_column"]] if files.get("input_column") else INPUT_COLUMNS[kind]),
        *([files["label_column"]] if files.get("label_column") else LABEL_COLUMNS),
    }
    for name, positions in repeated.items():
        if name in read:
            raise DataError(
                f"{path}, line 1: the header names the column {name!r} {len(positions)} times (columns "
                f"{', '.join(map(str, positions))}); rename all but one"
            )
    if repeated:
        logger.warning(
            "%s, line 1: the header repeats the column(s) %s, which are not read",
            path,
            ", ".join(repr(name) for name in repeated),
        )


def _beside(value: Any, folder: Path) -> Any:
    """An image path of a table made relative to the table's ``folder``; bytes and absolute paths kept."""
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(folder / value)
    if isinstance(value, dict) and not value.get("bytes") and value.get("path"):
        if not Path(str(value["path"])).expanduser().is_absolute():
            return {**value, "path": str(folder / str(value["path"]))}
    return value


def _named_splits(files: dict[str, Any], kind: str, request: DataRequest) -> dict[str, Column | None]:
    """The splits of a ``save_to_disk`` folder or a hub data set."""
    datasets = _datasets()
    source = files.get("path")
    if not source:
        raise DataError(
            f"data.files.format {files['format']} needs data.files.path: "
            + (
                "the folder Dataset.save_to_disk wrote"
                if files["format"] == "disk"
                else "the hub data set's name"
            )
        )
    if files["format"] == "disk":
        folder = find_file(source, request, "save_to_disk folder")
        try:
            loaded = datasets.load_from_disk(str(folder))
        except Exception as error:
            raise DataError(
                f"{folder} is not a folder written by Dataset.save_to_disk: {_innermost(error)}"
            ) from None
        where = str(folder)
    else:
        try:
            loaded = datasets.load_dataset(source, cache_dir=_hf_cache(request))
        except Exception as error:
            raise DataError(
                f"hub data set {source!r} could not be loaded ({_innermost(error)}); without a network, "
                "load it where there is one, save it with save_to_disk and use format: disk"
            ) from None
        where = f"hub:{source}"
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    columns: dict[str, Column | None] = {}
    for split in SPLITS:
        wanted = _split_files(files, split) or [n for n in DEFAULT_SPLIT_NAMES[split] if n in loaded]
        if not wanted:
            if split != "dev":
                raise DataError(
                    f"{where} has no {split} split (it has {', '.join(loaded)}); "
                    f"name it as data.files.{split}"
                )
            columns[split] = None
            continue
        missing = [name for name in wanted if name not in loaded]
        if missing:
            raise DataError(f"{where} has no split {missing[0]!r} (it has {', '.join(loaded)})")
        table = loaded[wanted[0]]
        if kind == "images":
            table = table.cast_column(_image_column(table, files), datasets.Image(decode=False))
        columns[split] = _joined([(f"{where} [{wanted[0]}]", "rows", _columns_of(table, files, kind, where))])
    return columns


def _npz_splits(files: dict[str, Any], request: DataRequest) -> dict[str, Column | None]:
    """``x_train`` / ``y_train``, ``x_test`` / ``y_test`` and optionally ``x_dev`` (or ``x_val``)."""
    name = files.get("path") or (_split_files(files, "train") or [None])[0]
    if name is None:
        raise DataError("data.files.format npz needs data.files.path: the .npz file")
    path = find_file(name, request, "npz file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            held = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npz file ({error}); write it with numpy.savez") from None
    columns: dict[str, Column | None] = {}
    for split, suffixes in (("train", ("train",)), ("dev", ("dev", "val", "valid")), ("test", ("test",))):
        found = next((s for s in suffixes if f"x_{s}" in held), None)
        if found is None or f"y_{found}" not in held:
            if split == "dev" and found is None:
                columns[split] = None
                continue
            raise DataError(
                f"{path} has no x_{suffixes[0]} / y_{suffixes[0]} arrays (it holds {', '.join(sorted(held))})"
            )
        inputs, labels = held[f"x_{found}"], held[f"y_{found}"]
        if labels.ndim > 1 and labels.shape[1:] != (1,) * (labels.ndim - 1):
            raise DataError(
                f"{path}: y_{found} has shape {labels.shape}, not one label per row (one-hot or "
                f"multi-label?); store the class indices, e.g. y_{found}.argmax(axis=1)"
            )
        labels = labels.reshape(-1)
        if len(inputs) != len(labels):
            raise DataError(f"{path}: x_{found} has {len(inputs)} rows but y_{found} {len(labels)}")
        columns[split] = Column(list(inputs), labels, [f"{path} [x_{found}]"], [0])
    return columns


def _columns_of(table: Any, files: dict[str, Any], kind: str, where: str) -> tuple[list, list, list | None]:
    """(inputs, labels, ClassLabel names or None) of a ``datasets.Dataset``."""
    input_column = files.get("input_column") or _first_present(table.column_names, INPUT_COLUMNS[kind])
    label_column = files.get("label_column") or _first_present(table.column_names, LABEL_COLUMNS)
    for role, column, tried in (
        ("input", input_column, INPUT_COLUMNS[kind]),
        ("label", label_column, LABEL_COLUMNS),
    ):
        if column is None or column not in table.column_names:
            named = f"column {column!r}" if column else f"{role} column named {' or '.join(tried)}"
            raise DataError(
                f"{where} has no {named} (its columns: {', '.join(table.column_names)}); "
                f"name it as data.files.{role}_column"
            )
    feature = table.features[label_column]
    labels = table[label_column]
    names = list(feature.names) if hasattr(feature, "names") else None
    if names is not None:
        # A ClassLabel's ids index its own names, which differ between files (a test folder
        # without one class): the labels travel as names. -1 is its "no label".
        labels = [None if value is None or value < 0 else names[value] for value in labels]
    return table[input_column], labels, names


def _first_present(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _image_column(table: Any, files: dict[str, Any] | None = None) -> str:
    given = (files or {}).get("input_column")
    return given or _first_present(table.column_names, INPUT_COLUMNS["images"]) or table.column_names[0]


def _joined(parts: list[tuple[str, str, tuple[list, list, list | None]]]) -> Column:
    """One column of the files of a split: (path, layout, (inputs, labels, ClassLabel names)) each."""
    inputs: list[Any] = []
    labels: list[Any] = []
    starts = []
    names = None
    for _, _, (part_inputs, part_labels, part_names) in parts:
        starts.append(len(labels))
        inputs.extend(part_inputs)
        labels.extend(part_labels)
        if part_names is not None:
            names = (names or []) + [name for name in part_names if name not in (names or [])]
    return Column(
        inputs, labels, [path for path, _, _ in parts], starts, names, [layout for _, layout, _ in parts]
    )


def _check_image_folder(folder: Path) -> None:
    """An image folder exists, each class sub-folder holds an image, and what is not an image is named."""
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} is not a folder: give the folder that holds one sub-folder per class"
        )
    # One walk of the tree: an image folder may hold hundreds of thousands of files.
    entries = list(folder.rglob("*"))
    files = [path for path in entries if path.is_file()]
    broken = [path for path in entries if path.is_symlink() and not path.exists()]
    if broken:
        logger.warning(
            "%s: %d link(s) that lead nowhere (a missing target or a loop) left out, e.g. %s",
            folder,
            len(broken),
            broken[0],
        )
    with_images = {
        path.relative_to(folder).parts[0] for path in files if path.suffix.lower() in IMAGE_ENDINGS
    }
    empty = [sub.name for sub in sorted(folder.iterdir()) if sub.is_dir() and sub.name not in with_images]
    if empty:
        raise DataError(
            f"class folder {folder / empty[0]} holds no images ({len(empty)} empty class folder(s) in "
            f"{folder}); remove it or add its images"
        )
    ignored = [p for p in files if p.suffix.lower() not in IMAGE_ENDINGS and p.name != "metadata.csv"]
    if ignored:
        logger.warning(
            "%s: %d file(s) that are not images left out, e.g. %s", folder, len(ignored), ignored[0]
        )


# ---------------------------------------------------------------------------------------- labels


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


def _check_carved(train: Column, kept: int, carved: int, fraction: float) -> None:
    """Refuse a carve that leaves dev without a row, before anything trains (train keeps a row of
    every class: :func:`stratified_split`)."""
    if carved == 0:
        # round(fraction * n) is 0 up to n = 0.5 / fraction (a half rounds to even, 0), and a class
        # of one example gives none.
        smallest = max(math.floor(0.5 / fraction) + 1, 2)
        raise DataError(
            f"{train.files[0]}: data.files.dev_fraction {fraction} of the {kept} training rows carves no "
            f"dev row (a class needs at least {smallest} rows to give one); give a dev file as "
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
        self.parent, self.index = parent, index

    def row_name(self, index: int) -> str:
        return self.parent.row_name(int(self.index[index]))


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
    from .image_cache import cached_images

    size = tuple(files["image_size"]) if files.get("image_size") else None
    channels = files.get("channels")
    cache = cache_root(files) / "images"
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
            progress=request.options.get("progress", True),
        )
        # Every split as the first: the channels and size train decided.
        channels, size = int(images.shape[1]), (int(images.shape[2]), int(images.shape[3]))
        splits[split] = Split(images, torch.from_numpy(ids[split]))
    details["image_shape"] = [channels, *size]
    return Dataset(name, splits["train"], splits["dev"], splits["test"], class_names, details=details)


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
) -> Any:
    from .text_classes import text_class_dataset

    texts: dict[str, list[str] | None] = {}
    for split in SPLITS:
        column = columns.get(split)
        texts[split] = None if column is None else _checked_texts(column)
    dataset = text_class_dataset(
        name,
        texts,
        ids,
        class_names,
        tokenizer=request.options.get("tokenizer") or "words",
        vocabulary_size=request.options.get("vocabulary_size", 50_000),
        max_text_tokens=request.options.get("max_text_tokens", 512),
        text_encoder=request.options.get("text_encoder"),
    )
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
    from .sequences import load_text_dataset

    split_files = {}
    for split in SPLITS:
        pair = _split_files(files, split)
        if len(pair) != 2:
            raise DataError(
                f"data.files.{split} must be [source file, target file] for format parallel "
                f"(e.g. [{split}.en, {split}.de]), got {files.get(split)!r}"
            )
        split_files[split] = tuple(find_file(p, request, f"{split} file") for p in pair)
    from .corpora import corpus_options

    options = corpus_options(request.options)
    dataset = load_text_dataset(
        _data_name(files),
        None,
        max_train_pairs=request.max_train_pairs,
        split_files=split_files,
        metric=files.get("metric", "bleu"),
        **options,
    )
    dataset.details = {"format": "parallel", "fingerprint": fingerprint(files, request)}
    return dataset


# ---------------------------------------------------------------------------------------- caches


def cache_root(files: dict[str, Any]) -> Path:
    """Where decoded images and Arrow files are kept: data.files.cache_dir, $LABELEMB_CACHE, or
    ``$XDG_CACHE_HOME/labelemb`` (``~/.cache/labelemb``)."""
    given = files.get("cache_dir") or os.environ.get("LABELEMB_CACHE")
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelemb"


def _hf_cache(request: DataRequest) -> str:
    return str(cache_root(request.options.get("files") or {}) / "hf")


def files_fingerprint(request: DataRequest) -> str | None:
    """The content digest of the files a request names (:func:`fingerprint`), as a run records it;
    None for a hub data set, whose content is not read before loading."""
    files = dict(request.options.get("files") or {})
    if files.get("format") == "hub":
        return None
    return fingerprint(files, request)


def fingerprint(files: dict[str, Any], request: DataRequest) -> str:
    """A digest of the data's content: the bytes of every file a split names (all the files of an
    image folder), or a saved / hub data set's own fingerprints. A resumed run compares it, so a
    run never continues on other data under the same file names."""
    digest = hashlib.sha256()
    fmt = files.get("format", "csv")
    if fmt in ("disk", "hub"):
        digest.update(str(files.get("path")).encode())
        if fmt == "disk":
            folder = find_file(files["path"], request, "save_to_disk folder")
            for state in sorted(folder.rglob("state.json")):
                digest.update(state.read_bytes())
        return digest.hexdigest()
    names = [files["path"]] if fmt == "npz" and files.get("path") else []
    names += [n for split in SPLITS for n in _split_files(files, split)]
    for name in names:
        path = find_file(name, request, "file")
        digest.update(_path_digest(path))
    return digest.hexdigest()


def _path_digest(path: Path) -> bytes:
    """sha256 over a file's bytes, or over the names and bytes of every file under a folder."""
    if not path.is_dir():
        return _file_digest(path)
    digest = hashlib.sha256()
    for part in sorted(path.rglob("*")):
        if part.is_file():
            digest.update(part.name.encode())
            digest.update(_file_digest(part))
    return digest.digest()


#: File digests of this process, keyed by what changes whenever a file's content does (the inode's
#: change time too, which no copy tool can set back), so a command hashes each file once.
_DIGESTS: dict[tuple[str, int, int, int, int], bytes] = {}


def _file_digest(path: Path) -> bytes:
    status = path.stat()
    key = (str(path.resolve()), status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.digest()
    return _DIGESTS[key]


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(
            "data.name: files reads your files with Hugging Face datasets: pip install 'labelemb[data]'"
        ) from None
    # Its own log lines would add to the one line an error gets (the reader's failure is ours to say).
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    datasets.disable_progress_bars()
    return datasets


def _innermost_error(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def _innermost(error: BaseException) -> str:
    return _describe(_innermost_error(error))
