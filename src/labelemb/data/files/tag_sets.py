"""A table's column of tag sets (``data.files.tags_column``) as bool rows: which tags there are and
which row carries which.

A cell is a list of tags (JSON lines, Parquet, a saved or hub data set) or a string of them, split
at any run of whitespace and commas, or at ``data.files.tag_separator`` where one is given (each tag
stripped of the spaces around it). A tag is a name; a number is read as its text. A tag written
twice in a row counts once. The tag names, in id order, are ``data.files.class_names`` if given, the
names of a list of ``ClassLabel`` ids, else the training tags sorted (by value where every one is a
whole number).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..base import DataError
from .labels import check_given_names, check_has_rows, is_missing, label_kind, shown_names
from .rows import Column

#: What parts the tags of a string cell when no ``data.files.tag_separator`` is given.
SPACES_OR_COMMAS = re.compile(r"[\s,]+")


def tag_sets(
    columns: dict[str, Column | None], given_names: list[str] | None, separator: str | None, column_name: str
) -> tuple[list[str], dict[str, np.ndarray | None]]:
    """The tag names and each split's tag sets, bool (N, K), True where row n carries tag k. An
    empty tag set, a tag that is not one of the names, or tag sets with nothing to learn (a single
    tag, the same set on every row, one tag on every row: single-label data) are refused, each in
    one line naming the file (and the row)."""
    train = columns["train"]
    assert train is not None
    parsed: dict[str, list[list[str]] | None] = {}
    for split, column in columns.items():
        if column is not None:
            check_has_rows(column, split)
        parsed[split] = None if column is None else tags_of_column(column, separator)
    if given_names:
        check_given_names(given_names)
    trained = parsed["train"]
    assert trained is not None
    names = list(given_names or train.class_names or _sorted_tags({tag for row in trained for tag in row}))
    _check_something_to_learn(train, trained)
    if all(len(row) == 1 for rows in parsed.values() if rows is not None for row in rows):
        raise DataError(
            f"{train.files[0]}: every row of the tags column {column_name!r} holds exactly one tag; this "
            "is single-label: name it data.files.label_column (in place of data.files.tags_column)"
        )
    lookup = {name: k for k, name in enumerate(names)}
    named = bool(given_names or train.class_names)
    sets = {
        split: None if rows is None else _multi_hot(columns[split], split, rows, lookup, names, named)
        for split, rows in parsed.items()
    }
    return names, sets


def random_split(sets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, dev indices): ``fraction`` of the rows of ``sets`` (bool (N, K)) drawn with
    ``seed``, each part in its original order. A tag set has no one class to stratify by, so the
    draw is plain; a drawn row carrying a tag that no row left in train carries goes back to
    train, so every tag of the file keeps a training row (as a stratified carve keeps every class)."""
    generator = np.random.default_rng(seed)
    rows = len(sets)
    dev = np.sort(generator.permutation(rows)[: int(round(fraction * rows))])
    in_train = np.ones(rows, dtype=bool)
    in_train[dev] = False
    lacking = sets.any(axis=0) & ~sets[in_train].any(axis=0)
    if lacking.any():
        dev = dev[~sets[dev][:, lacking].any(axis=1)]
    return np.setdiff1d(np.arange(rows), dev), dev


def tags_of_column(column: Column, separator: str | None) -> list[list[str]]:
    """Each row's tags, as training reads them (a prediction reads an input table's the same way)."""
    return [_tags_of(column, i, value, separator) for i, value in enumerate(list(column.labels))]


def _tags_of(column: Column, row: int, value: Any, separator: str | None) -> list[str]:
    """Row ``row``'s tags, each once, in the order the cell writes them."""
    if isinstance(value, str) and separator is None:
        pieces: list[Any] = SPACES_OR_COMMAS.split(value)
    elif isinstance(value, str):
        # A separator written with spaces around it (" | ") is the separator itself ("|").
        pieces = value.split(separator.strip() or separator)
    elif isinstance(value, (list, tuple, np.ndarray)):
        pieces = list(value)
    else:
        pieces = [] if is_missing(value) else [value]  # a number: one tag, read as its text
    tags = []
    for piece in pieces:
        if is_missing(piece):
            continue
        if label_kind(piece) == "several":
            raise DataError(
                f"{column.row_name(row)}: the tag {piece!r} is a {type(piece).__name__}; a tag is a name "
                "(text or a number): write the row's tags as one flat list"
            )
        tags.append(str(piece).strip())
    if not tags:
        raise DataError(
            f"{column.row_name(row)}: the tag set is empty ({value!r} holds no tag); give the row at "
            "least one tag, or remove the row"
        )
    return list(dict.fromkeys(tags))


def _sorted_tags(tags: set[str]) -> list[str]:
    if all(tag.isdigit() for tag in tags):
        return sorted(tags, key=int)
    return sorted(tags)


def _check_something_to_learn(train: Column, trained: list[list[str]]) -> None:
    present = sorted({tag for row in trained for tag in row})
    if len(present) < 2:
        raise DataError(
            f"{train.files[0]}: the training rows hold a single tag ({present[0]!r}); tag sets need at "
            "least two tags"
        )
    first = set(trained[0])
    if all(set(row) == first for row in trained[1:]):
        raise DataError(
            f"{train.files[0]}: every training row holds the same tag set ({', '.join(sorted(first))}), "
            "which leaves nothing to learn; give the rows their own tags"
        )


def _multi_hot(
    column: Column, split: str, rows: list[list[str]], lookup: dict[str, int], names: list[str], named: bool
) -> np.ndarray:
    sets = np.zeros((len(rows), len(names)), dtype=bool)
    for i, tags in enumerate(rows):
        for tag in tags:
            k = lookup.get(tag)
            if k is None:
                raise DataError(_not_a_tag(column, i, tag, split, names, named))
            sets[i, k] = True
    return sets


def _not_a_tag(column: Column, i: int, tag: str, split: str, names: list[str], named: bool) -> str:
    if named:
        return (
            f"{column.row_name(i)}: tag {tag!r} is not one of the tag names ({shown_names(names)}); fix "
            "the tag, or add it to data.files.class_names"
        )
    return (
        f"{column.row_name(i)}: tag {tag!r} is not a training tag ({split} has it, train does not; "
        f"train's tags: {shown_names(names)}); fix the tag, or list every tag in data.files.class_names"
    )
