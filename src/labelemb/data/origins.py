"""Where each row of a split came from: the file, and the row's number in that file.

A split read from a user's files keeps, beside its inputs and labels, each row's origin
(:attr:`~labelemb.data.base.Split.origins`), so that whatever is said of a row (a prediction, a
label that looks wrong) names it as the file numbers it, however the loader moved the rows: a dev
split carved from train, train cut to ``max_train_pairs``, labels made noisy.

A row's number counts the data rows of its file from 1, as a table reader counts them: a CSV
file's header is no row (row 1 is the first row under it), blank lines are no rows, and a quoted
cell over several lines is one row; a JSON-lines file's row n is its n-th object; a Parquet
file's, an ``.npz`` array's and a saved or hub data set's split's row n is its n-th row. Where
every row is a file of its own (an image folder's images), the file is the row's whole name and
there is no number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class RowOrigins:
    """Each row's origin: row ``i`` is row ``rows[i]`` (1-based) of ``files[file_index[i]]``, or,
    where ``rows`` is None, the file ``files[file_index[i]]`` itself (an image folder's image).

    ``files`` are named as the loader found them: a path, ``data.npz [x_train]`` (an array of a
    file), ``hub:name [train]`` (a split of a data set)."""

    files: tuple[str, ...]
    file_index: np.ndarray
    rows: np.ndarray | None

    def __post_init__(self) -> None:
        if self.rows is not None and len(self.rows) != len(self.file_index):
            raise ValueError(f"RowOrigins has {len(self.rows)} row numbers for {len(self.file_index)} rows")

    @classmethod
    def counted(cls, files: Sequence[str], starts: Sequence[int], size: int) -> RowOrigins:
        """The origins of ``size`` rows read from ``files`` one after another, the rows of
        ``files[k]`` starting at row ``starts[k]`` of the split (0-based)."""
        index = np.arange(size, dtype=np.int64)
        file_index = np.searchsorted(np.asarray(starts, dtype=np.int64), index, side="right") - 1
        rows = index - np.asarray(starts, dtype=np.int64)[file_index] + 1
        return cls(tuple(files), file_index.astype(np.int64), rows)

    @classmethod
    def each_a_file(cls, paths: Sequence[str]) -> RowOrigins:
        """The origins of rows that are each a file of their own, ``paths`` in row order."""
        return cls(tuple(paths), np.arange(len(paths), dtype=np.int64), None)

    def __len__(self) -> int:
        return len(self.file_index)

    def take(self, index: np.ndarray | slice) -> RowOrigins:
        """The origins of the rows ``index`` picks (an index array, or a slice), in its order."""
        rows = None if self.rows is None else self.rows[index]
        return RowOrigins(self.files, self.file_index[index], rows)

    def file(self, i: int) -> str:
        """The file row ``i`` came from (the image itself, where each row is a file)."""
        return self.files[int(self.file_index[i])]

    def row(self, i: int) -> int | None:
        """Row ``i``'s number in its file (1-based); None where each row is a file of its own."""
        return None if self.rows is None else int(self.rows[i])

    @property
    def several_files(self) -> bool:
        """Whether the rows are numbered in more than one file (the split's files, as the config
        names them): a number alone does not say which."""
        return self.rows is not None and len(self.files) > 1

    def place(self, i: int) -> str:
        """Row ``i`` as a person finds it: ``train.csv, row 5``, or the image file's path."""
        row = self.row(i)
        return self.file(i) if row is None else f"{self.file(i)}, row {row}"
