"""Reading your tables, image folders, saved and hub data sets and arrays into columns per split.

Tables and image folders go through Hugging Face ``datasets`` (local files offline; a hub name
where the network allows, cached by content); every problem is a
:class:`~labelemb.data.base.DataError` naming the file, and the line where there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..base import DataError
from ..cache_files import WRITABLE_HINT, make_folder
from ..registry import DataRequest
from .digest import path_digest
from .options import FilesOptions
from .paths import SPLITS, cache_root, find_file, split_files
from .rows import Column, csv_header, explain_unreadable, repeated_columns

logger = logging.getLogger(__name__)

#: The split names a saved or hub data set is read under when the config names none.
DEFAULT_SPLIT_NAMES = {"train": ("train",), "dev": ("validation", "dev", "valid"), "test": ("test",)}
#: Default column names, tried in order.
INPUT_COLUMNS = {"text": ("text", "sentence", "content"), "images": ("image", "img")}
LABEL_COLUMNS = ("label", "labels")
#: The ``datasets`` builder of each table format.
BUILDERS = {"csv": "csv", "json": "json", "parquet": "parquet", "imagefolder": "imagefolder"}
#: Image file endings Hugging Face's imagefolder reads; anything else in an image folder is left out.
IMAGE_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_splits(files: dict[str, Any], kind: str, request: DataRequest) -> dict[str, Column | None]:
    """Each split's inputs and raw labels, read as ``files["format"]`` says."""
    fmt = files.get("format", "csv")
    if fmt == "npz":
        return _npz_splits(files, request)
    if fmt in ("disk", "hub"):
        return _named_splits(files, kind, request)
    if not split_files(files, "train") or not split_files(files, "test"):
        raise DataError(
            f"data.files (format {fmt}) needs the files of train and test (data.files.train, "
            "data.files.test); dev is optional (carved from train by data.files.dev_fraction)"
        )
    return {
        split: _read_files(files, kind, split, request) if split_files(files, split) else None
        for split in SPLITS
    }


def _read_files(files: dict[str, Any], kind: str, split: str, request: DataRequest) -> Column:
    fmt = files.get("format", "csv")
    parts = []
    for name in split_files(files, split):
        path = find_file(name, request, f"{split} file")
        if fmt == "imagefolder":
            _check_image_folder(path)
        elif path.is_dir():
            raise DataError(f"{split} file {path} is a folder, not a {fmt} file; name the file itself")
        if fmt == "csv":
            _check_header(path, files, kind)
        table = _load_table(fmt, path, request)
        inputs, labels, names, clean = _columns_of(table, files, kind, str(path))
        if kind == "images" and fmt != "imagefolder":
            # A table's image paths are its own: beside it, wherever the command runs.
            inputs = [_beside(value, path.parent) for value in inputs]
        parts.append((str(path), fmt if fmt in ("csv", "json") else "rows", (inputs, labels, names, clean)))
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
    cache = cache_root(request.options(FilesOptions).cache_dir) / "hf" / path_digest(path).hex()[:24]
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
        *([_label_column(files)] if _label_column(files) else LABEL_COLUMNS),
        *([files["clean_label_column"]] if files.get("clean_label_column") else []),
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
        wanted = split_files(files, split) or [n for n in DEFAULT_SPLIT_NAMES[split] if n in loaded]
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
    name = files.get("path") or (split_files(files, "train") or [None])[0]
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


def _columns_of(
    table: Any, files: dict[str, Any], kind: str, where: str
) -> tuple[list, list, list | None, list | None]:
    """(inputs, labels, ClassLabel names or None, the true labels of ``data.files.clean_label_column``
    or None where the table has no such column) of a ``datasets.Dataset``."""
    input_column = files.get("input_column") or _first_present(table.column_names, INPUT_COLUMNS[kind])
    label_column = _label_column(files) or _first_present(table.column_names, LABEL_COLUMNS)
    for role, column, tried in (
        ("input", input_column, INPUT_COLUMNS[kind]),
        ("tags" if files.get("tags_column") else "label", label_column, LABEL_COLUMNS),
    ):
        if column is None or column not in table.column_names:
            named = f"column {column!r}" if column else f"{role} column named {' or '.join(tried)}"
            raise DataError(
                f"{where} has no {named} (its columns: {', '.join(table.column_names)}); "
                f"name it as data.files.{role}_column"
            )
    labels, names = _labels_of(table, label_column)
    clean_column = files.get("clean_label_column")
    clean = _labels_of(table, clean_column)[0] if clean_column in table.column_names else None
    return column_values(table, input_column), labels, names, clean


def column_values(table: Any, column: str) -> list:
    """The values of ``column`` of a ``datasets.Dataset``, as its rows give them, read as one
    column (its own formatting, features decoded alike) rather than a row at a time."""
    # table[column] is a lazy column that formats a row per value when iterated: over the
    # hundred thousand rows of a text table, most of the time of reading it.
    return list(table[column][:])


def _labels_of(table: Any, column: str) -> tuple[list, list | None]:
    """(the labels of ``column``, its ClassLabel names or None)."""
    feature = table.features[column]
    labels = column_values(table, column)
    names = list(feature.names) if hasattr(feature, "names") else None
    if names is not None:
        # A ClassLabel's ids index its own names, which differ between files (a test folder
        # without one class): the labels travel as names. -1 is its "no label".
        labels = [None if value is None or value < 0 else names[value] for value in labels]
    inner = getattr(feature, "feature", None)  # a list of ClassLabel ids: a tag set, as names too
    if names is None and hasattr(inner, "names"):
        names = list(inner.names)
        labels = [None if row is None else [names[value] for value in row if value >= 0] for row in labels]
    return labels, names


def _label_column(files: dict[str, Any]) -> str | None:
    """The column of the labels the config names: its tag sets' or its labels'."""
    return files.get("tags_column") or files.get("label_column")


def _first_present(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _image_column(table: Any, files: dict[str, Any] | None = None) -> str:
    given = (files or {}).get("input_column")
    return given or _first_present(table.column_names, INPUT_COLUMNS["images"]) or table.column_names[0]


def _joined(parts: list[tuple[str, str, tuple[list, list, list | None, list | None]]]) -> Column:
    """One column of the files of a split: (path, layout, (inputs, labels, ClassLabel names, true
    labels or None)) each. A split's files carry true labels all or none."""
    inputs: list[Any] = []
    labels: list[Any] = []
    clean: list[Any] = []
    starts = []
    names = None
    for _, _, (part_inputs, part_labels, part_names, part_clean) in parts:
        starts.append(len(labels))
        inputs.extend(part_inputs)
        labels.extend(part_labels)
        clean.extend(part_clean or [])
        if part_names is not None:
            names = (names or []) + [name for name in part_names if name not in (names or [])]
    carried = [path for path, _, (_, _, _, part_clean) in parts if part_clean is not None]
    if carried and len(carried) < len(parts):
        lacking = next(path for path, _, (_, _, _, part_clean) in parts if part_clean is None)
        raise DataError(
            f"{lacking} has no true-label column (data.files.clean_label_column) but {carried[0]}, of the "
            "same split, has one; give every file of a split the column, or none"
        )
    column = Column(
        inputs, labels, [path for path, _, _ in parts], starts, names, [layout for _, layout, _ in parts]
    )
    column.clean_labels = clean if carried else None
    return column


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


def _hf_cache(request: DataRequest) -> str:
    return str(cache_root(request.options(FilesOptions).cache_dir) / "hf")


def _datasets() -> Any:
    try:
        import datasets  # lazy: the data extra
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
