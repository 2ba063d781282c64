"""What ``labelemb predict --input PATH`` reads: each input with the name its output row carries.

A table (CSV, JSON lines, Parquet; gzip allowed) gives the run's input column (texts, or image
paths relative to the table's folder) and its label column where it has one; a folder gives its
image files (a class sub-folder is each file's label); an ``.npz`` file its ``x`` or ``x_test``
array (and ``y``/``y_test``); a ``.txt`` file one text a line; an image file itself. ``--split``
reads a split of the run's own data set as the run read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.files.options import FilesOptions
from ..data.files.tables import IMAGE_ENDINGS, INPUT_COLUMNS, LABEL_COLUMNS
from ..data.text.corpus import read_lines
from .source import PredictError, Trained

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


def read_rows(path: Path, trained: Trained) -> Rows:
    """The inputs in ``path`` for a run that reads ``trained.yields`` (see the module docstring)."""
    kind = trained.yields
    if not path.exists():
        raise PredictError(f"input {path} does not exist")
    if path.is_dir():
        if kind != "images":
            raise PredictError(
                f"input {path} is a folder, but this run reads texts: give a table or a .txt file"
            )
        return _image_folder(path)
    if kind == "token_pairs":  # source lines, whatever the file is called (.en, .de, .txt)
        lines = read_lines(path)
        return Rows("line", [str(i + 1) for i in range(len(lines))], lines)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in TABLE_FORMATS:
        return _table(path, TABLE_FORMATS[suffix], trained)
    if suffix == ".npz":
        return _arrays(path, kind)
    if suffix == ".txt" and kind == "texts":
        lines = path.read_text(encoding="utf-8").splitlines()
        return Rows("line", [str(i + 1) for i in range(len(lines))], lines)
    if suffix in IMAGE_ENDINGS and kind == "images":
        return Rows("file", [path.name], [str(path)])
    readable = (
        ".csv, .jsonl, .parquet, .txt (one text a line)"
        if kind == "texts"
        else (".csv, .jsonl, .parquet (a column of image paths), .npz, an image folder or an image file")
    )
    raise PredictError(f"cannot read input {path} for a run that reads {kind}: give {readable}")


def _table(path: Path, fmt: str, trained: Trained) -> Rows:
    """A table's input column and, where it has one, its label column (names of the run's config first)."""
    import pandas as pd

    kind = trained.yields
    files = trained.config.section(FilesOptions)
    defaults = INPUT_COLUMNS["images" if kind == "images" else "text"]
    wanted_input = [files.input_column] if files.input_column else list(defaults)
    wanted_label = [files.label_column] if files.label_column else list(LABEL_COLUMNS)
    try:
        if fmt in ("csv", "tsv"):
            # As the training reader: a cell spelt NA or null is that text, not a missing value.
            table = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", keep_default_na=False, dtype=str)
        elif fmt == "json":
            table = pd.read_json(path, lines=True, dtype=False)
        else:
            table = pd.read_parquet(path)
    except Exception as error:  # pandas' and pyarrow's parser errors have no common base
        raise PredictError(
            f"input {path} cannot be read as {fmt} ({type(error).__name__}: {error})"
        ) from None
    column = next((c for c in wanted_input if c in table.columns), None)
    if column is None:
        raise PredictError(
            f"input {path} has no column {' or '.join(map(repr, wanted_input))}, the run's input "
            f"column (its columns: {', '.join(map(str, table.columns))})"
        )
    items = list(table[column])
    if kind == "images":
        # A table's image paths are its own: beside it, wherever the command runs.
        items = [
            str(path.parent / item) if isinstance(item, str) and not Path(item).is_absolute() else item
            for item in items
        ]
    label = next((c for c in wanted_label if c in table.columns), None)
    labels = None if label is None else [str(value) for value in table[label]]
    return Rows("row", [str(i + 1) for i in range(len(items))], items, labels)


def _image_folder(folder: Path) -> Rows:
    """Every image file under ``folder`` in sorted order; a class sub-folder is its label."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_ENDINGS)
    if not files:
        raise PredictError(f"input folder {folder} holds no image files ({', '.join(IMAGE_ENDINGS)})")
    names = [str(p.relative_to(folder)) for p in files]
    nested = all(len(Path(name).parts) > 1 for name in names)
    labels = [Path(name).parts[0] for name in names] if nested else None
    return Rows("file", names, [str(p) for p in files], labels)


def _arrays(path: Path, kind: str) -> Rows:
    """An ``.npz`` file's inputs: ``x`` (or ``x_test``), and ``y`` (or ``y_test``) where it has it."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            held = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise PredictError(f"input {path} is not a readable .npz file ({error})") from None
    key = next((k for k in ("x", "x_test") if k in held), None)
    if key is None:
        raise PredictError(f"input {path} has no array x or x_test (it holds {', '.join(sorted(held))})")
    if kind != "images":
        raise PredictError(f"input {path}: arrays are images, but this run reads texts")
    inputs = held[key]
    labels_key = "y" + key[1:]
    labels = [str(v) for v in held[labels_key].reshape(-1)] if labels_key in held else None
    return Rows("row", [str(i + 1) for i in range(len(inputs))], list(inputs), labels)


def split_rows(trained: Trained, split: str, data_dir: str | None) -> Rows:
    """A split of the run's own data set, read as the run read it (its labels as class names)."""
    from ..train.build import load_run_data

    config = trained.config
    if data_dir is not None:
        config = config.model_copy(update={"data": config.data.model_copy(update={"dir": data_dir})})
    dataset = load_run_data(config)
    held = getattr(dataset, split, None)
    if held is None:
        raise PredictError(f"the data of {trained.origin} has no {split} split")
    if hasattr(held, "reference_tokens"):  # a text pair split: its references beside the output
        references = [" ".join(words) for words in held.reference_tokens]
        return Rows("line", [str(i + 1) for i in range(len(held))], held, references)
    names = list(dataset.class_names)
    labels = [names[i] for i in held.labels.tolist()]
    return Rows("row", [str(i + 1) for i in range(len(held))], held, labels)
