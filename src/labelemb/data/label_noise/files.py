"""Noise read from files: a transition matrix, or fixed noisy labels for a data set's training file.

Both are data: numbers read with numpy (``.npy`` without pickles, or plain text), never code.
A labels file is checked against the data set before anything trains: its length is the training
file's, its labels are classes of the data set, and it agrees with the data set's own labels more
often than unrelated labels would (a file made for another data set, or in another order, agrees
about as often as chance: ``sum_k f_k g_k`` for the two label frequencies ``f`` and ``g``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base import DataError

#: A labels file must agree with the clean labels this many times more often than chance does.
#: Unrelated labels agree about as often as chance (1x); the noisiest published setting known to
#: us (Wei & Liu 2021's uniform-high, 74 % wrong on 10 classes) still agrees 2.6x as often.
MIN_AGREEMENT_OVER_CHANCE = 1.5


def read_numbers(path: Path, what: str) -> np.ndarray:
    """The array a ``.npy`` file (no pickles) or a text file (whitespace or commas) holds."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        text = path.read_text(encoding="utf-8").replace(",", " ")
        rows = [
            line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]
        return np.array([[float(value) for value in row] for row in rows])
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path}: cannot read {what} ({str(error).splitlines()[0]}); give a .npy array, or a text "
            "file with one row of numbers per line"
        ) from None


def read_label_file(path: Path, num_classes: int) -> np.ndarray:
    """A file of labels, one per row of a training file, as int64; refused if any is not a class."""
    values = read_numbers(path, "noisy labels").reshape(-1)
    if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
        raise DataError(f"{path}: noisy labels must be whole class ids 0..{num_classes - 1}; found fractions")
    labels = values.astype(np.int64)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: label {labels[first]} at row {first} is not a class of this data set "
            f"(0..{num_classes - 1}): the file was made for another data set"
        )
    return labels


def check_labels_fit(
    path: Path, noisy: np.ndarray, clean: np.ndarray, num_classes: int, rows: np.ndarray
) -> float:
    """Refuse a labels file that does not belong to the training file it is given for (``clean``,
    of which the run reads ``rows``); return the share of those rows' labels that agree."""
    if noisy.shape[0] != clean.shape[0]:
        raise DataError(
            f"{path} holds {noisy.shape[0]} labels, but the data set's training file has {clean.shape[0]} "
            "rows: a noisy-labels file gives one label per row of the training file, in its order"
        )
    noisy, clean = noisy[rows], clean[rows]
    agreement = float(np.mean(noisy == clean)) if clean.size else 1.0
    chance = float(
        np.dot(np.bincount(clean, minlength=num_classes), np.bincount(noisy, minlength=num_classes))
        / max(clean.size, 1) ** 2
    )
    if clean.size and agreement < MIN_AGREEMENT_OVER_CHANCE * chance:
        raise DataError(
            f"{path} agrees with the data set's own labels on {100 * agreement:.1f} % of the rows, about "
            f"as often as unrelated labels would ({100 * chance:.1f} %): it was made for another data set "
            "or in another order"
        )
    return agreement
