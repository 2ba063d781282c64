"""The folds of cross-fitting: each training row's fold (stratified, seeded), the checks that the
data can be split so, and each fold's data set: trained on the other folds, its own rows held out.

Tag sets (bool (N, K) labels) have no one label to stratify by: their folds are plain seeded K-fold
(shuffled), each fold a random fifth of the rows; a tag then is not in every fold's training rows in
the same share, which a rare tag feels most (its held-out rows score against a model that saw fewer
of it).

A fold's data set is the loaded data set with its training split cut to the other folds' rows and
its test split made of the held-out rows (so that the fold's run reports its error on exactly the
rows it never trained on); its dev split is the data set's own. What the data set keeps beside a
split (each row's origin, a text's whole text, the noise's clean labels, the rows of the training
file) is cut with it."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from ..data import Dataset, Split
from ..data.cleaning import training_places

#: Cross-fitting's default number of folds (each fold's model trains on the other 4/5 of the rows).
DEFAULT_FOLDS = 5


class LabelIssuesError(ValueError):
    """What cannot be searched for wrong labels as asked; the message is one line naming the fix."""


def check_foldable(labels: np.ndarray, class_names: list[str], folds: int) -> None:
    """Refuse, in one line, a fold count below 2, labels of one class, or a class with fewer
    training rows than folds (stratified folds give every fold at least one row of each class)."""
    if folds < 2:
        raise LabelIssuesError(
            f"--folds {folds}: cross-fitting needs at least 2 folds (default {DEFAULT_FOLDS})"
        )
    counts = np.bincount(labels, minlength=len(class_names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = class_names[int(present[0])] if len(present) else "none"
        raise LabelIssuesError(
            f"the training labels hold one class only ({only!r}): there is no other label a row could "
            "have instead; wrong labels are found among two classes or more"
        )
    few = [int(c) for c in present if counts[c] < folds]
    if few:
        rarest = min(few, key=lambda c: counts[c])
        raise LabelIssuesError(
            f"class {class_names[rarest]!r} has {int(counts[rarest])} training row(s), fewer than the "
            f"{folds} folds ({len(few)} class(es) do): each fold needs one of each class; use --folds "
            f"{max(2, int(counts[rarest]))} or fewer"
        )


def check_tags_foldable(tags: np.ndarray, tag_names: list[str], folds: int) -> None:
    """Refuse, in one line, a fold count below 2 or above the rows, a data set of one tag, or a tag
    that no training row carries (its given presence is the same on every row: nothing to judge)."""
    if folds < 2:
        raise LabelIssuesError(
            f"--folds {folds}: cross-fitting needs at least 2 folds (default {DEFAULT_FOLDS})"
        )
    if len(tags) < folds:
        raise LabelIssuesError(
            f"{len(tags)} training row(s) for {folds} folds: each fold holds out one row at least; "
            f"use --folds {max(2, len(tags))} or fewer"
        )
    if len(tag_names) < 2:
        raise LabelIssuesError(
            f"the data set has one tag only ({tag_names[0] if tag_names else 'none'!r}): a row either "
            "carries it or not, a one-class problem; wrong tags are found among two tags or more"
        )
    absent = [tag_names[k] for k in np.flatnonzero(~np.asarray(tags, dtype=bool).any(axis=0))]
    if absent:
        raise LabelIssuesError(
            f"tag {absent[0]!r} is carried by no training row ({len(absent)} tag(s) are not): its "
            "presence cannot be judged; add training rows that carry it or drop it from the other splits"
        )


def assign_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each row's fold (0 .. folds - 1), stratified by label and shuffled with ``seed``: the same
    labels, fold count and seed give the same folds. Tag sets (labels (N, K)) get plain shuffled
    K-fold (see the module docstring)."""
    fold = np.empty(len(labels), dtype=np.int64)
    if np.ndim(labels) == 2:
        for k, (_, held) in enumerate(KFold(n_splits=folds, shuffle=True, random_state=seed).split(labels)):
            fold[held] = k
        return fold
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[held] = k
    return fold


def take_rows(split: Split, index: np.ndarray) -> Split:
    """The rows ``index`` of ``split``, in that order, as a split of the same kind: every per-row
    tensor it holds (inputs, labels, a text's lengths) and its row origins cut alike."""
    picked = torch.as_tensor(index, dtype=torch.long)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(split):
        value = getattr(split, field.name)
        if field.name == "origins":
            value = None if value is None else value.take(np.asarray(index))
        elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == len(split):
            value = value[picked.to(value.device)]
        values[field.name] = value
    return type(split)(**values)


def fold_dataset(dataset: Dataset, held: np.ndarray) -> Dataset:
    """``dataset`` training on every training row but ``held`` (sorted row positions), with the
    ``held`` rows as its test split (see the module docstring)."""
    kept = np.setdiff1d(np.arange(len(dataset.train)), held)
    changes: dict[str, Any] = {
        "train": take_rows(dataset.train, kept),
        "test": take_rows(dataset.train, held),
        "file_rows": {
            **dataset.file_rows,
            **({"train": dataset.file_rows["train"][kept]} if "train" in dataset.file_rows else {}),
        },
        "training_file_size": dataset.training_file_size,
    }
    if dataset.noise is not None:
        clean = dict(dataset.noise.clean)
        clean["train"] = clean["train"][torch.as_tensor(kept)]
        changes["noise"] = dataclasses.replace(dataset.noise, clean=clean)
    texts = getattr(dataset, "texts", None)
    if texts and "train" in texts:
        whole = texts["train"]
        changes["texts"] = {
            **texts,
            "train": [whole[i] for i in kept],
            "test": [whole[i] for i in held],
        }
    return dataclasses.replace(dataset, **changes)


#: Where each training row came from, as the list names it: the one naming that ``data.clean``
#: matches a list's rows by (:func:`labelemb.data.cleaning.training_places`).
training_origins = training_places
