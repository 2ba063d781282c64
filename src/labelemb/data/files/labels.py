"""The labels of a user's table as class ids: which classes there are and which row holds what.

The class names are the config's (``data.files.class_names``), a ``ClassLabel``'s, or the training
labels sorted. A label is one value per row, all of one kind in a column (all names, or all
integers); a file read as text (a CSV column the reader took as strings) still matches another
file's integers by their text, since ``3`` and ``"3"`` are one label written two ways.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..base import DataError
from .rows import Column

logger = logging.getLogger(__name__)


def class_ids(
    columns: dict[str, Column | None], given_names: list[str] | None
) -> tuple[list[str], dict[str, np.ndarray | None]]:
    """The class names and each split's labels as ids: the config's names, a ClassLabel's, or the
    training labels sorted; a label a later split has but train lacks is an error naming it."""
    train = columns["train"]
    assert train is not None
    for split, column in columns.items():
        if column is not None:
            check_labels(column, split)
    if given_names:
        check_given_names(given_names)
    names, lookup = _class_lookup(train, given_names)
    ids = {
        split: None if column is None else _ids(column, split, lookup, names, _kind_of(train))
        for split, column in columns.items()
    }
    present = np.unique(ids["train"])
    if len(present) < 2:
        raise DataError(
            f"{train.files[0]}: the training labels hold a single class ({names[int(present[0])]!r}); "
            "classification needs at least two"
        )
    return list(names), ids


def clean_class_ids(
    columns: dict[str, Column | None], given_names: list[str] | None, column_name: str
) -> dict[str, np.ndarray]:
    """Each split's true labels (the column ``column_name``, ``data.files.clean_label_column``) as ids
    of the classes :func:`class_ids` read from train's labels. Train must carry them; dev and test
    may. The two columns must name the same classes: a true class the trained-on labels never name
    (or the reverse) is a mistake in one of them, refused."""
    train = columns["train"]
    assert train is not None
    if train.clean_labels is None:
        raise DataError(
            f"{train.files[0]} has no column {column_name!r} (data.files.clean_label_column); name the "
            "column of each row's true label, or drop data.files.clean_label_column"
        )
    names, lookup = _class_lookup(train, given_names)
    clean: dict[str, np.ndarray] = {}
    for split, column in columns.items():
        if column is None or column.clean_labels is None:
            continue
        true = Column(column.inputs, column.clean_labels, column.files, column.starts, None, column.layouts)
        check_labels(true, f"{split} ({column_name})")
        if split == "train" and not given_names:
            _check_same_classes(train, true, column_name)
        clean[split] = _ids(true, f"{split} ({column_name})", lookup, names, _kind_of(train))
    return clean


def _check_same_classes(train: Column, true: Column, column_name: str) -> None:
    trained_on = {str(value).strip() for value in _as_list(train.labels)}
    truth = {str(value).strip() for value in _as_list(true.labels)}
    if trained_on != truth:
        only_true, only_noisy = sorted(truth - trained_on), sorted(trained_on - truth)
        said = []
        if only_true:
            said.append(
                f"{column_name} holds {', '.join(map(repr, only_true[:5]))}, which the label column does not"
            )
        if only_noisy:
            said.append(
                f"the label column holds {', '.join(map(repr, only_noisy[:5]))}, which {column_name} does not"
            )
        raise DataError(
            f"{train.files[0]}: the two label columns name different classes ({'; '.join(said)}); "
            "they must name the same classes (is one of them another data set's, or coded differently?)"
        )


def _class_lookup(train: Column, given_names: list[str] | None) -> tuple[list[str], dict[Any, int]]:
    """The class names, and each label value's class id: the given names, a ClassLabel's, or the
    training labels sorted."""
    names = given_names or train.class_names
    if names is None:
        ordered = sorted(set(_as_list(train.labels)))
        return [str(value) for value in ordered], {value: i for i, value in enumerate(ordered)}
    return list(names), _name_lookup(names, train)


def check_labels(column: Column, split: str) -> None:
    """Every row has one label, and a column's labels are all of one kind (names or numbers)."""
    check_has_rows(column, split)
    labels = _as_list(column.labels)
    first_of_kind: dict[str, int] = {}
    for i, value in enumerate(labels):
        if is_missing(value):
            raise DataError(f"{column.row_name(i)}: the label is missing; fill it in or remove the row")
        kind = label_kind(value)
        if kind == "several":
            raise DataError(
                f"{column.row_name(i)}: the label is a {type(value).__name__} ({_short(value)}); a row of "
                "several labels is a tag set: name the column as data.files.tags_column (multi-label), "
                "or keep one label per row"
            )
        first_of_kind.setdefault(kind, i)
        if len(first_of_kind) > 1:
            (kind_a, row_a), (kind_b, row_b) = sorted(first_of_kind.items(), key=lambda item: item[1])
            raise DataError(
                f"{column.row_name(row_b)}: the label {labels[row_b]!r} is {_KIND_WORDS[kind_b]}, but "
                f"{column.row_name(row_a)} has {labels[row_a]!r}, {_KIND_WORDS[kind_a]}; write every "
                "label of the column the same way (all class names, or all integers)"
            )


def check_has_rows(column: Column, split: str) -> None:
    """A split read from files holds at least one row."""
    if not len(column):
        raise DataError(
            f"{column.files[0]}: the {split} split has no rows; add rows to it, or leave {split} out "
            "of data.files where it is optional (dev)"
        )


def is_missing(value: Any) -> bool:
    """An empty cell as the readers give it: None, NaN or an empty (or blank) string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def label_kind(value: Any) -> str:
    """``text``, ``number``, ``bool`` or ``several`` (a list or mapping: more than one label)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return "several"


_KIND_WORDS = {"text": "text", "number": "a number", "bool": "a true/false value"}
_KIND_PLURALS = {"text": "text", "number": "numbers", "bool": "true/false values"}


def shown_names(names: list[str], limit: int = 10) -> str:
    """The first ``limit`` of ``names``, and how many there are in all where that is more."""
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_given_names(names: list[str]) -> None:
    """Each name of ``data.files.class_names`` given once."""
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(
                f"data.files.class_names names {name!r} twice (positions {seen[name]} and {position}); "
                "each name once"
            )
        seen[name] = position


def _kind_of(column: Column) -> str:
    labels = _as_list(column.labels)
    return label_kind(labels[0]) if labels else "text"


def _name_lookup(names: list[str], train: Column) -> dict[Any, int]:
    lookup: dict[Any, int] = {name: i for i, name in enumerate(names)}
    if _kind_of(train) == "number":
        lookup.update({i: i for i in range(len(names))})
    return lookup


def _ids(column: Column, split: str, lookup: dict[Any, int], names: list[str], train_kind: str) -> np.ndarray:
    labels = _as_list(column.labels)
    by_text = {str(key): i for key, i in lookup.items()}
    ids = np.empty(len(labels), dtype=np.int64)
    matched_by_text = None
    for i, value in enumerate(labels):
        found = lookup.get(value)
        if found is None:
            found = by_text.get(str(value).strip())
            if found is not None and matched_by_text is None:
                matched_by_text = i
        if found is None:
            raise DataError(_not_a_class(column, i, value, split, names, train_kind))
        ids[i] = found
    if matched_by_text is not None:
        logger.warning(
            "%s: label %r matched to the class %r by its text (train's labels are %s)",
            column.row_name(matched_by_text),
            labels[matched_by_text],
            names[int(ids[matched_by_text])],
            _KIND_PLURALS.get(train_kind, train_kind),
        )
    return ids


def _not_a_class(column: Column, i: int, value: Any, split: str, names: list[str], train_kind: str) -> str:
    shown = shown_names(names)
    if split == "train":
        where = f"the class names are {shown}"
    else:
        where = f"train does not have it; train's classes: {shown}"
    return (
        f"{column.row_name(i)}: label {value!r} is not a class ({where}); fix the label, or list every "
        "class in data.files.class_names"
    )


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values.tolist()
    return list(values)
