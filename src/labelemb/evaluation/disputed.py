"""The test rows whose labels people disputed (the config's ``disputed_test_labels``): read once,
checked against the run's test split, and judged by where the selected weights rank them among
their least confident predictions (:func:`labelemb.metrics.noise.disputed_figures`).

The file is data: a JSON list of row indices, or of objects with an ``id`` (the layout of
cleanlab's label-errors files), or a text file of one index per line. Nothing in it is run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data import DataError
from ..data.files.paths import find_file
from ..data.registry import DataRequest
from ..predict.source import PredictError


@dataclass(frozen=True)
class DisputedRows:
    """The disputed test rows, the file they came from and a digest of them."""

    rows: Tensor
    source: str
    digest: str


def read_disputed(name: str, request: DataRequest, test_size: int) -> DisputedRows:
    """The rows the file ``name`` names (looked for as the run's data files are), checked to be
    distinct rows of a test split of ``test_size``; a PredictError naming the file and the fix."""
    try:
        path = find_file(name, request, "disputed_test_labels file", key="disputed_test_labels")
    except DataError as error:
        raise PredictError(str(error)) from None
    rows = _rows(path)
    if not rows:
        raise PredictError(f"{path} names no test row; give at least one index (disputed_test_labels)")
    outside = [row for row in rows if not 0 <= row < test_size]
    if outside:
        raise PredictError(
            f"{path}: row {outside[0]} is outside the test split's {test_size} rows (0-{test_size - 1}); "
            "is the file made for another data set?"
        )
    if len(set(rows)) < len(rows):
        twice = next(row for row in rows if rows.count(row) > 1)
        raise PredictError(f"{path}: row {twice} is named twice; name each disputed row once")
    digest = hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()
    return DisputedRows(torch.tensor(rows, dtype=torch.long), str(path), digest)


def _rows(path: Path) -> list[int]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise PredictError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
        if not isinstance(entries, list):
            raise PredictError(f"{path} holds a JSON {type(entries).__name__}; give a list of row indices")
        return [
            _index(entry.get("id") if isinstance(entry, dict) else entry, path, i)
            for i, entry in enumerate(entries)
        ]
    return [_index(line.strip(), path, i) for i, line in enumerate(text.splitlines()) if line.strip()]


def _index(value: object, path: Path, position: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise PredictError(
            f"{path}: entry {position + 1} ({value!r}) is not a row index; give whole numbers, or objects "
            'with an "id"'
        )
    return int(value)
