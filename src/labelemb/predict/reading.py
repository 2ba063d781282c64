"""What ``labelemb predict --input PATH`` reads: each input with the name its output row carries.

A table (CSV, JSON lines, Parquet; gzip allowed) gives the run's input column (texts, or image
paths relative to the table's folder) and its label column where it has one; a folder gives its
image files (a sub-folder named after a class is each file's label); an ``.npz`` file its ``x`` or
``x_test`` array (and ``y``/``y_test``); a ``.txt`` file one text a line; an image file itself.
An input's own labels become the run's class names as training maps labels (:func:`class_labels`);
a multi-label run's table gives its tags column, split as training splits it (:func:`own_tags`).
``--split`` reads a split of the run's own data set as the run read it, where the run found it,
each row named as its file numbers it (:func:`split_names`).
Whatever training refuses (no rows, an empty text, a label that is no class) is refused here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..assembly import load_run_data
from ..data.base import DataError
from ..data.files.labels import is_missing, shown_names
from ..data.files.options import FilesOptions
from ..data.files.rows import Column, explain_unreadable, row_place
from ..data.files.tables import IMAGE_ENDINGS, INPUT_COLUMNS, LABEL_COLUMNS

# The training reader's own split of a tags cell (private there: predict reads a cell as training does).
from ..data.files.tag_sets import tags_of_column
from ..data.text.corpus import read_lines
from .raw_texts import split_inputs
from .source import BUNDLE_FILE, PredictError, Trained, read_start

#: The tags column a table of a multi-label run's inputs is read for, where its config names none.
TAGS_COLUMN = "tags"
TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class Rows:
    """The inputs of one prediction: ``items`` (texts, image sources, or a split as the run holds
    it), what each output row calls its input (``names``, under the column ``name_column``), and
    the label each input gives, where the input holds labels."""

    name_column: str
    names: list[str]
    items: Any
    labels: list[str] | None = None
    #: A multi-label run's inputs' own tag sets, bool ``(N, K)`` over its tags, where they give them.
    tags: Tensor | None = None
    #: What a refusal calls each input where its name alone does not say the file (an array's row).
    places: list[str] | None = None
    #: Each input's file, where the inputs come from several (a split read from several files):
    #: its ``row`` is numbered in that file.
    files: list[str] | None = None

    def record(self, i: int) -> dict[str, str]:
        """What output row ``i`` calls its input: ``{"row": "5"}`` (or ``line``, ``file``), and
        ``{"file": "b.csv", "row": "5"}`` where the inputs come from several files."""
        if self.files is not None:
            return {"file": self.files[i], self.name_column: self.names[i]}
        return {self.name_column: self.names[i]}


def read_rows(path: Path, trained: Trained) -> Rows:
    """The inputs in ``path`` for a run that reads ``trained.reads`` (see the module docstring)."""
    kind = trained.reads
    if not path.exists():
        raise PredictError(f"input {path} does not exist")
    if path.is_dir():
        if kind != "images":
            raise PredictError(
                f"input {path} is a folder, but this run reads texts: give a table or a .txt file"
            )
        return _image_folder(path, trained)
    if kind == "token_pairs":  # source lines, whatever the file is called (.en, .de, .txt)
        lines = read_lines(path)
        return _nonempty(Rows("line", [str(i + 1) for i in range(len(lines))], lines), path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in TABLE_FORMATS:
        return _table(path, TABLE_FORMATS[suffix], trained)
    if suffix == ".npz":
        return _arrays(path, trained)
    if suffix == ".txt" and kind == "texts":
        lines = read_lines(path)  # as training reads a text file: UTF-8, its byte-order mark dropped
        rows = Rows("line", [str(i + 1) for i in range(len(lines))], lines)
        return _checked_texts(_nonempty(rows, path), lambda i: f"{path}, line {i + 1}")
    if suffix in IMAGE_ENDINGS and kind == "images":
        return Rows("file", [path.name], [str(path)])
    readable = (
        ".csv, .jsonl, .parquet, .txt (one text a line)"
        if kind == "texts"
        else (".csv, .jsonl, .parquet (a column of image paths), .npz, an image folder or an image file")
    )
    raise PredictError(f"cannot read input {path} for a run that reads {kind}: give {readable}")


def _table(path: Path, fmt: str, trained: Trained) -> Rows:
    """A table's input column and, where it has one, its label column (its tags column for a
    multi-label run; names of the run's config first)."""
    kind = trained.reads
    files = trained.config.section(FilesOptions)
    defaults = INPUT_COLUMNS["images" if kind == "images" else "text"]
    wanted_input = [files.input_column] if files.input_column else list(defaults)
    wanted_label = [files.label_column] if files.label_column else list(LABEL_COLUMNS)
    table = _read_table(path, fmt)
    column = next((c for c in wanted_input if c in table.columns), None)
    if column is None:
        raise PredictError(
            f"input {path} has no column {' or '.join(map(repr, wanted_input))}, the run's input "
            f"column (its columns: {', '.join(map(str, table.columns))})"
        )
    items = list(table[column])
    layout = fmt if fmt in ("csv", "json") else "rows"

    def place(i: int) -> str:
        return row_place(str(path), i, layout)

    rows = _nonempty(Rows("row", [str(i + 1) for i in range(len(items))], items), path)
    if kind == "images":
        rows.items = _image_paths(items, path.parent, place)
    else:
        _checked_texts(rows, place)
    if trained.multi_label:
        tags = files.tags_column or TAGS_COLUMN
        if tags in table.columns:
            rows.tags = own_tags(list(table[tags]), trained, str(path), layout)
        return rows
    label = next((c for c in wanted_label if c in table.columns), None)
    if label is not None:
        rows.labels = class_labels(list(table[label]), trained, place)
    return rows


def _read_table(path: Path, fmt: str) -> Any:
    """The table in ``path`` as pandas reads it; a :class:`PredictError` saying what is wrong."""
    import pandas as pd  # lazy: the data (pandas comes with datasets) extra

    try:
        if fmt in ("csv", "tsv"):
            # As the training reader: a cell spelt NA or null is that text, not a missing value.
            return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", keep_default_na=False, dtype=str)
        if fmt == "json":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except Exception as error:  # pandas' and pyarrow's parser errors have no common base
        problem = explain_unreadable(fmt, path)
        if problem is not None:
            raise PredictError(f"input {path}: {problem}") from None
        raise PredictError(
            f"input {path} cannot be read as {fmt} ({type(error).__name__}: {error})"
        ) from None


def _nonempty(rows: Rows, path: Path) -> Rows:
    """``rows``, refused where it holds none (there is nothing to predict, nor an error to count)."""
    if not rows.names:
        raise PredictError(f"input {path} holds no rows; give a file with at least one input")
    return rows


def _checked_texts(rows: Rows, place: Callable[[int], str]) -> Rows:
    """``rows``, refused at the first text that is empty (training refuses it too)."""
    for i, text in enumerate(rows.items):
        if is_missing(text):
            raise PredictError(f"{place(i)}: the text is empty; fill it in or remove the row")
    return rows


def _image_paths(items: list[Any], folder: Path, place: Callable[[int], str]) -> list[Any]:
    """A table's image paths, relative to its own ``folder`` wherever the command runs; refused at
    the first that is empty or names no file, before any image is read."""
    paths = []
    for i, item in enumerate(items):
        if is_missing(item):
            raise PredictError(f"{place(i)}: the image path is empty; fill it in or remove the row")
        if isinstance(item, str):
            item = str(folder / item) if not Path(item).is_absolute() else item
            if not Path(item).is_file():
                raise PredictError(
                    f"{place(i)}: image {item} does not exist (a table's image paths are read "
                    f"relative to its folder, {folder}); fix the path or remove the row"
                )
        paths.append(item)
    return paths


def _image_folder(folder: Path, trained: Trained) -> Rows:
    """Every image file under ``folder`` in sorted order; where every file is in a sub-folder named
    after one of the run's classes, that class is its label."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_ENDINGS)
    if not files:
        raise PredictError(f"input folder {folder} holds no image files ({', '.join(IMAGE_ENDINGS)})")
    names = [str(p.relative_to(folder)) for p in files]
    nested = all(len(Path(name).parts) > 1 for name in names)
    labels = [Path(name).parts[0] for name in names] if nested else None
    if labels is not None and not set(labels) <= set(trained.class_names):
        labels = None  # sub-folders that are not the run's classes (dates, batches) are no labels
    return Rows("file", names, [str(p) for p in files], labels)


def _arrays(path: Path, trained: Trained) -> Rows:
    """An ``.npz`` file's inputs: ``x`` (or ``x_test``), and ``y`` (or ``y_test``) where it has it."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            held = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise PredictError(f"input {path} is not a readable .npz file ({error})") from None
    key = next((k for k in ("x", "x_test") if k in held), None)
    if key is None:
        raise PredictError(f"input {path} has no array x or x_test (it holds {', '.join(sorted(held))})")
    if trained.reads != "images":
        raise PredictError(f"input {path}: arrays are images, but this run reads texts")
    inputs = held[key]
    rows = _nonempty(Rows("row", [str(i + 1) for i in range(len(inputs))], list(inputs)), path)
    rows.places = [f"{path} [{key}], row {i + 1}" for i in range(len(inputs))]
    labels_key = "y" + key[1:]
    if labels_key in held:
        values = held[labels_key].reshape(-1).tolist()
        if len(values) != len(inputs):
            raise PredictError(
                f"input {path}: {labels_key} holds {len(values)} labels for {len(inputs)} inputs in "
                f"{key}; give one label per input, or leave {labels_key} out"
            )
        rows.labels = class_labels(values, trained, lambda i: f"{path} [{labels_key}], row {i + 1}")
    return rows


def own_tags(values: list[Any], trained: Trained, path: str, layout: str) -> Tensor:
    """A table's tags column as bool tag sets ``(N, K)`` over the run's tags, each cell split as
    training splits one (``data.files.tag_separator``); a tag that is not the run's is refused,
    naming where it is."""
    separator = trained.config.section(FilesOptions).tag_separator
    column = Column(values, values, [path], [0], layouts=[layout])
    try:
        parsed = tags_of_column(column, separator)
    except DataError as error:
        raise PredictError(str(error)) from None
    index = {name: k for k, name in enumerate(trained.class_names)}
    sets = torch.zeros((len(parsed), len(index)), dtype=torch.bool)
    for i, tags in enumerate(parsed):
        for tag in tags:
            if tag not in index:
                raise PredictError(
                    f"{column.row_name(i)}: tag {tag!r} is not a tag of the run (its tags: "
                    f"{shown_names(list(index))}); fix the tag, or leave the tags column out to predict "
                    "without counting"
                )
            sets[i, index[tag]] = True
    return sets


def class_labels(values: Sequence[Any], trained: Trained, place: Callable[[int], str]) -> list[str]:
    """Each of an input's own labels as the run's class name, mapped as training maps labels
    (:func:`labelemb.data.files.labels.class_ids`): a class name is itself; an integer (or its
    text, or a whole float) is the class at that position where the run's classes are named
    (``data.files.class_names``, or names that are not all integers, as a named data set's), and
    the class spelt as that integer where the classes are the training labels' own integers. A
    label that is no class of the run is refused, naming where it is (``place(i)``)."""
    names = [str(name) for name in trained.class_names]
    given = trained.config.section(FilesOptions).class_names
    positional = bool(given) or not all(_integer_text(name) for name in names)
    found = []
    for i, value in enumerate(values):
        name = _class_name(value, names, positional)
        if name is None:
            raise PredictError(f"{place(i)}: {_not_a_class(value, names, positional)}")
        found.append(name)
    return found


def _class_name(value: Any, names: list[str], positional: bool) -> str | None:
    number = _whole_number(value)
    if number is not None and positional:
        return names[number] if 0 <= number < len(names) else None
    text = str(number) if number is not None else str(value).strip()
    if text in names:
        return text
    if positional and _integer_text(text):  # a table read as text: "2" is the integer 2
        return names[int(text)] if 0 <= int(text) < len(names) else None
    return None


def _whole_number(value: Any) -> int | None:
    """``value`` as an integer where it is one (a whole float too); None for text and booleans."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def _integer_text(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _not_a_class(value: Any, names: list[str], positional: bool) -> str:
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    fix = "fix the label, or leave the label column out to predict without counting errors"
    if is_missing(value):
        return f"the label is empty; {fix}"
    written = repr(value) if isinstance(value, str) else str(value)
    if positional and (_whole_number(value) is not None or _integer_text(str(value))):
        return (
            f"label {written} is not a class: the run's {len(names)} classes are numbered 0 to "
            f"{len(names) - 1} ({shown}); {fix}"
        )
    return f"label {written} is not a class of the run (its classes: {shown}); {fix}"


def split_rows(trained: Trained, split: str, data_dir: str | None) -> Rows:
    """A split of the run's own data set, read as the run read it (its labels as class names),
    from where the run found it (:func:`data_config`), or from ``data_dir`` where given."""
    dataset = load_run_data(data_config(trained, data_dir))
    held = getattr(dataset, split, None)
    if held is None:
        raise PredictError(f"the data of {trained.origin} has no {split} split")
    if hasattr(held, "reference_tokens"):  # a text pair split: its references beside the output
        references = [" ".join(words) for words in held.reference_tokens]
        return Rows("line", [str(i + 1) for i in range(len(held))], held, references)
    rows = split_names(held)
    rows.items = split_inputs(trained.config, dataset, split)  # a TF-IDF run: the split's raw texts
    if trained.multi_label:  # its labels are the tag sets, bool (N, K)
        rows.tags = held.labels.bool().cpu()
        return rows
    classes = list(dataset.class_names)
    rows.labels = [classes[i] for i in held.labels.tolist()]
    return rows


def split_names(held: Any) -> Rows:
    """What each row of a split is called (its inputs left for the caller): the row's number in
    the file it came from, with the file where the split comes from several (``Rows.files``);
    an image folder's image file (``file``); the row's place in the split (1-based) where the split
    records no files (a named data set). See :mod:`labelemb.data.origins`."""
    origins = getattr(held, "origins", None)
    if origins is None:
        return Rows("row", [str(i + 1) for i in range(len(held))], None)
    places = [origins.place(i) for i in range(len(origins))]
    if origins.rows is None:
        return Rows("file", [origins.file(i) for i in range(len(origins))], None, places=places)
    files = [origins.file(i) for i in range(len(origins))] if origins.several_files else None
    return Rows("row", [str(row) for row in origins.rows.tolist()], None, places=places, files=files)


def data_config(trained: Trained, data_dir: str | None) -> Any:
    """The run's config, set to read its data where the run found it: relative file names are
    looked for in the folders it recorded when it started (its config file's, then ``data.dir``,
    both absolute), as training looked; with ``data_dir``, in that folder alone."""
    config = trained.config
    if data_dir is not None:
        data = config.data.model_copy(update={"dir": str(Path(data_dir).expanduser().resolve())})
        return config.model_copy(update={"data": data, "source_folder": None})
    if (trained.origin / BUNDLE_FILE).is_file():
        return config  # a bundle records no data folders: its config says where the data is
    folders = read_start(trained.origin).get("data_folders")
    if not isinstance(folders, dict):
        return config  # a run of an earlier labelemb: as its config says
    data = config.data.model_copy(update={"dir": folders.get("dir")})
    return config.model_copy(update={"data": data, "source_folder": folders.get("config_folder")})
