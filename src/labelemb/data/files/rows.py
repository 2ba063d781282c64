"""Where a row of a user's table is, said so a person can open it: the file and the line an editor
shows, and what is wrong with a table the reader could not parse.

Tables are read through Hugging Face ``datasets`` (pandas for CSV, pyarrow for JSON lines), whose
errors give a position inside a chunk or a byte offset. The functions here run only when
something is wrong (or to name a row in an error), reading the file again with the standard
library so that every message counts lines the same way: line 1 is a CSV file's header, a JSON-lines
file's first object.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..origins import RowOrigins

#: How a file's rows map to what an editor shows.
LINE_LAYOUTS = ("csv", "json")
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass
class Column:
    """One split as read: its inputs, its raw labels, and what an error calls each row."""

    inputs: list[Any] | np.ndarray
    labels: list[Any] | np.ndarray
    #: Row i came from ``files[k]`` for the last k with ``starts[k] <= i``.
    files: list[str]
    starts: list[int]
    #: The class names a ``ClassLabel`` gives the label column, if it is one.
    class_names: list[str] | None = None
    #: Each file's layout: ``csv`` or ``json`` (rows are named by line), else rows are counted.
    layouts: list[str] = field(default_factory=list)
    #: Each row's true label where the table carries one beside ``labels`` (``data.files.
    #: clean_label_column``); None where it does not.
    clean_labels: list[Any] | None = None

    def row_name(self, index: int) -> str:
        """``"train.csv, line 482"`` (the line an editor shows), or ``"data.npz [x_train], row 5"``."""
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        layout = self.layouts[k] if k < len(self.layouts) else "rows"
        return row_place(self.files[k], index - self.starts[k], layout)

    def origins(self) -> RowOrigins:
        """Each row's file and its row number there (1-based, data rows only: see
        :mod:`labelemb.data.origins`)."""
        return RowOrigins.counted(self.files, self.starts, len(self))

    def __len__(self) -> int:
        return len(self.labels)


def row_place(path: str, row: int, layout: str) -> str:
    """Row ``row`` (0-based, data rows only) of ``path`` as a person finds it."""
    if layout in LINE_LAYOUTS:
        try:
            line = csv_line(Path(path), row) if layout == "csv" else json_line(Path(path), row)
        except (OSError, csv.Error, EOFError, ValueError):
            line = None
        if line is not None:
            return f"{path}, line {line}"
    return f"{path}, row {row + 1}"


def open_text(path: Path) -> IO[str]:
    """``path`` as text, decompressed by its ending as the table reader does; undecodable bytes are
    replaced, so counting lines never fails on them."""
    return io.TextIOWrapper(_open_bytes(path), encoding="utf-8", errors="replace", newline="")


def _open_bytes(path: Path) -> IO[bytes]:
    opener = _OPENERS.get(path.suffix.lower())
    return opener(path, "rb") if opener is not None else open(path, "rb")


def csv_line(path: Path, row: int) -> int | None:
    """The line on which data row ``row`` (0-based; the header is not a row) of a CSV file starts.
    Blank lines are skipped, as the reader skips them; a quoted cell may span lines."""
    with open_text(path) as handle:
        reader = csv.reader(handle)
        end_of_previous, records = 0, -1  # -1: the header comes first
        for record in reader:
            start = end_of_previous + 1
            end_of_previous = reader.line_num
            if not record:
                continue
            if records == row:
                return start
            records += 1
    return None


def json_line(path: Path, row: int) -> int | None:
    """The line of object ``row`` (0-based) of a JSON-lines file (blank lines skipped); None for a
    file that is one JSON array, whose rows are not lines."""
    with open_text(path) as handle:
        rows = -1
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if rows == -1 and line.lstrip().startswith("["):
                return None
            rows += 1
            if rows == row:
                return number
    return None


def csv_header(path: Path) -> list[str]:
    """The column names in a CSV file's first non-blank line."""
    with open_text(path) as handle:
        for record in csv.reader(handle):
            if record:
                return [name.strip() for name in record]
    return []


def repeated_columns(header: list[str]) -> dict[str, list[int]]:
    """Each column name the header holds more than once, with its positions (1-based)."""
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(position)
    return {name: found for name, found in positions.items() if len(found) > 1}


def explain_unreadable(fmt: str, path: Path) -> str | None:
    """What makes a CSV or JSON-lines file unreadable, with its line and the fix; None if nothing
    the standard library can see (the reader's own message is then the best there is)."""
    if fmt not in ("csv", "json"):
        return None
    try:
        found = _undecodable_line(path) or (_malformed_json_line(path) if fmt == "json" else None)
        if found is None and (csv_line(path, 0) if fmt == "csv" else json_line(path, 0)) is None:
            if fmt == "csv" or not _is_json_array(path):
                return "the file holds no rows; add rows to it, or leave it out where its split is optional"
        return found
    except (OSError, EOFError, lzma.LZMAError):
        return None


def _is_json_array(path: Path) -> bool:
    return next((line.lstrip().startswith("[") for _, line in _nonblank_lines(path)), False)


def _undecodable_line(path: Path) -> str | None:
    with _open_bytes(path) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = line[error.start]
                return (
                    f"line {number} is not UTF-8 text (byte 0x{byte:02x} at column {error.start + 1}); "
                    "save the file as UTF-8"
                )
    return None


def _malformed_json_line(path: Path) -> str | None:
    for i, (number, line) in enumerate(_nonblank_lines(path)):
        if i == 0 and line.lstrip().startswith("["):
            return _malformed_json_array(path)
        try:
            value = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            return (
                f"line {number} is not valid JSON ({error.msg} at column {error.colno}); "
                "each line must hold one JSON object"
            )
        if not isinstance(value, dict):
            return (
                f"line {number} holds a JSON {type(value).__name__}, not an object; each line must "
                'hold one object such as {"text": ..., "label": ...}'
            )
    return None


def _malformed_json_array(path: Path) -> str | None:
    with open_text(path) as handle:
        try:
            json.load(handle)
        except json.JSONDecodeError as error:
            return f"line {error.lineno} is not valid JSON ({error.msg} at column {error.colno})"
    return None


def _nonblank_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line
