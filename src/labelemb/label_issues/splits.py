"""The split whose rows a search ranks (``labelemb label-issues --split``): the training split by
default, or the test split, as when a benchmark's test labels are themselves in doubt (MNIST's
test images that people disputed, Northcutt et al., NeurIPS 2021).

Searching the test split, the data set is seen with the test rows as its training rows: each fold's
model trains on the test split's other folds only, never on the training file's rows, and scores
the test rows it did not see. The dev split stays the data set's own (selection and the fitted
temperature read it, as for any run); the training file's rows become the test split, on which a
run trained on every searched row (``--dynamics``) reports its error. Each searched row keeps its
own origin: its number in the test file as the loader records it, else its place in the test
split counted from 1. The split is swapped after a frozen backbone's features are made, so the
features (a TF-IDF fitted to the training texts) are the ones any run of the config reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..data import Dataset, Split
from ..data.origins import RowOrigins
from .folds import LabelIssuesError

#: The splits a search can rank, the default first.
SEARCHED_SPLITS = ("train", "test")
#: What a data set keeps beside its splits, keyed by split name (a text data set's texts, the
#: count of texts cut to the token cap): swapped with the splits.
PER_SPLIT_FIELDS = ("texts", "cut_texts")


def check_split(split: str, noisy: bool) -> None:
    """Refuse, in one line, a split that cannot be searched, or a ``noise:`` section (``noisy``)
    with a split other than train: the noise never changes the test split's labels."""
    if split not in SEARCHED_SPLITS:
        raise LabelIssuesError(
            f"--split {split!r}: label-issues ranks the rows of {' or '.join(SEARCHED_SPLITS)}; "
            f"give {' or '.join(f'--split {name}' for name in SEARCHED_SPLITS)} (split= in Python)"
        )
    if noisy and split != "train":
        raise LabelIssuesError(
            f"--split {split}: the noise: section makes the training split's labels wrong and never the "
            f"{split} split's, so nothing searched there is judged; drop the noise section or --split"
        )


def searched_split(dataset: Dataset, split: str) -> Dataset:
    """``dataset`` with ``split``'s rows as its training rows and its training rows as its test
    split (see the module docstring); ``dataset`` itself for ``train``. The truth of the training
    labels (``noise``) does not follow: it says nothing of the searched rows."""
    if split == "train":
        return dataset
    searched: Split = getattr(dataset, split)
    if searched.origins is None:
        counted = RowOrigins.counted([f"{dataset.name} [{split}]"], [0], len(searched))
        searched = dataclasses.replace(searched, origins=counted)
    changes: dict[str, Any] = {
        "train": searched,
        split: dataset.train,
        "file_rows": {},  # they number the training file's rows, which are no longer searched
        "training_file_size": 0,
        "noise": None,
    }
    held = {part.name for part in dataclasses.fields(dataset)}
    for name in PER_SPLIT_FIELDS:
        kept = getattr(dataset, name, None)
        if name in held and isinstance(kept, dict):
            swapped = {key: value for key, value in kept.items() if key not in ("train", split)}
            if split in kept:
                swapped["train"] = kept[split]
            if "train" in kept:
                swapped[split] = kept["train"]
            changes[name] = swapped
    return dataclasses.replace(dataset, **changes)
