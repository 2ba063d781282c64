"""Texts with a set of tags each (multi-label text classification), read as single-label texts are.

The texts become word ids (or a pretrained encoder's ids) exactly as
:func:`~labelemb.data.text.classes.text_class_dataset` makes them, with the same vocabulary rules;
only the labels differ: each split's are a bool ``(N, K)`` tensor, True where text ``n`` carries
tag ``k``, and the data set's ``class_names`` are the ``K`` tag names in id order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .classes import TextClassDataset, text_class_dataset


@dataclass
class TaggedTextDataset(TextClassDataset):
    """Texts to tag sets: :class:`~labelemb.data.text.classes.TextClassSplit` splits whose labels are
    bool ``(N, K)``, ``class_names`` the ``K`` tags; the vocabulary as for texts with one label."""

    yields: str = "tagged texts"

    def __post_init__(self) -> None:
        super().__post_init__()
        for split_name, split in (("train", self.train), ("dev", self.dev), ("test", self.test)):
            if split is None:
                continue
            labels = split.labels
            if labels.dtype != torch.bool or labels.dim() != 2 or labels.shape[1] != len(self.class_names):
                raise ValueError(
                    f"dataset {self.name!r}: {split_name} labels must be bool tag sets (N, "
                    f"{len(self.class_names)}), one column per tag name; got {labels.dtype} "
                    f"{tuple(labels.shape)}"
                )

    def tag_counts(self) -> dict[str, dict[str, Any]]:
        """Each split's rows, the mean number of tags a row carries, and how many of the tags it
        holds at all (a tag no training row carries cannot be learnt)."""
        counts = {}
        for split_name, split in (("train", self.train), ("dev", self.dev), ("test", self.test)):
            if split is None:
                continue
            per_row = split.labels.sum(dim=1, dtype=torch.int64)
            counts[split_name] = {
                "rows": len(split),
                "mean_tags": round(float(per_row.double().mean()), 4) if len(split) else 0.0,
                "tags_present": int(split.labels.any(dim=0).sum()),
            }
        return counts


def tagged_text_dataset(
    name: str,
    texts: dict[str, list[str] | None],
    tags: dict[str, np.ndarray | None],
    tag_names: list[str],
    **options: Any,
) -> TaggedTextDataset:
    """A data set of texts and their tag sets (each split's a bool ``(N, K)`` array, K =
    ``len(tag_names)``); ``options`` are :func:`~labelemb.data.text.classes.text_class_dataset`'s
    (``tokenizer``, ``vocabulary_size``, ``max_text_tokens``, ``text_encoder``)."""
    dataset = text_class_dataset(name, texts, tags, tag_names, dataset_type=TaggedTextDataset, **options)
    assert isinstance(dataset, TaggedTextDataset)
    return dataset
