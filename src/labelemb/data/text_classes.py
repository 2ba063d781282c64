"""Texts with one label each (text classification): word ids padded into a tensor, and their vocabulary.

A text becomes tokens with one of :data:`~labelemb.data.text.TOKENIZERS`, is cut to its first
``max_text_tokens`` tokens (what the model reads), and becomes word ids with a
:class:`~labelemb.data.text.Vocabulary` built from the training texts alone (``<pad>`` 0, ``<unk>``
1 first; a dev or test word it lacks is ``<unk>``). Each split holds its ids as one int64 ``(N, L)``
tensor padded with ``<pad>`` (``L``: the split's longest kept text) and each text's length, so a
batch can be cut to its own longest text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .base import DataError, Dataset, Split, check_labels
from .text import PAD, TOKENIZERS, Vocabulary

#: The split names a text-classification data set is given, in order.
SPLIT_NAMES = ("train", "dev", "test")


@dataclass
class TextClassSplit(Split):
    """One split of texts: ``inputs`` int64 ``(N, L)`` word ids padded with 0, ``labels`` ``(N,)`` and
    ``lengths`` ``(N,)``, each text's tokens (the ids of text ``i`` are ``inputs[i, :lengths[i]]``)."""

    lengths: torch.Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inputs.dim() != 2 or self.inputs.dtype != torch.int64:
            raise ValueError(
                f"TextClassSplit.inputs must be int64 word ids (N, L), got {self.inputs.dtype} "
                f"{tuple(self.inputs.shape)}"
            )
        if self.lengths.shape != self.labels.shape:
            raise ValueError(f"TextClassSplit has {tuple(self.lengths.shape)} lengths for {len(self)} texts")

    def to(self, device: torch.device) -> TextClassSplit:
        return TextClassSplit(self.inputs.to(device), self.labels.to(device), self.lengths.to(device))

    def first(self, count: int) -> TextClassSplit:
        return TextClassSplit(self.inputs[:count], self.labels[:count], self.lengths[:count])


@dataclass
class TextClassDataset(Dataset):
    """Texts to classes: :class:`TextClassSplit` splits, the training vocabulary, and how many texts
    of each split were cut to ``max_text_tokens``. ``input_shape`` is ``(len(vocabulary),)``: what a
    bag-of-words backbone is built for."""

    yields: str = "texts"
    vocabulary: Vocabulary = field(kw_only=True)
    #: Texts longer than the cap, per split (what the model reads is their first tokens).
    cut_texts: dict[str, int] = field(default_factory=dict, kw_only=True)
    max_text_tokens: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        # The splits are padded to their own longest text, so their widths differ (unlike images).
        for split_name, split in (("train", self.train), ("dev", self.dev), ("test", self.test)):
            if split is not None and not isinstance(split, TextClassSplit):
                raise ValueError(f"dataset {self.name!r}: the {split_name} split is not a TextClassSplit")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(vocabulary size,)``."""
        return (len(self.vocabulary),)


def text_class_dataset(
    name: str,
    texts: dict[str, list[str] | None],
    labels: dict[str, np.ndarray | None],
    class_names: list[str],
    *,
    tokenizer: str = "words",
    vocabulary_size: int = 50_000,
    max_text_tokens: int | None = 512,
) -> TextClassDataset:
    """A text-classification data set from raw texts and int64 class ids per split.

    ``texts`` and ``labels`` have the keys ``train``, ``dev`` and ``test`` (``dev`` may be None or
    missing). Each text is tokenised, cut to ``max_text_tokens`` (None: no cut) and encoded with a
    vocabulary of at most ``vocabulary_size`` entries (specials included) built from the kept
    tokens of the training texts. An empty text is the caller's to refuse; given one, it is kept as
    zero tokens (a bag-of-words model reads it as a zero vector).
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
    if max_text_tokens is not None and max_text_tokens < 1:
        raise ValueError(f"max_text_tokens must be at least 1 or None, got {max_text_tokens}")
    for required in ("train", "test"):
        if texts.get(required) is None or labels.get(required) is None:
            raise DataError(f"data set {name!r}: the {required} split needs texts and labels")
    tokenize = TOKENIZERS[tokenizer]
    tokens: dict[str, list[list[str]]] = {}
    cut_texts: dict[str, int] = {}
    for split in SPLIT_NAMES:
        split_texts = texts.get(split)
        if split_texts is None:
            continue
        whole = [tokenize(text) for text in split_texts]
        tokens[split] = [words[:max_text_tokens] for words in whole]
        cut_texts[split] = sum(len(w) > len(kept) for w, kept in zip(whole, tokens[split]))
    vocabulary = Vocabulary.build(tokens["train"], max_size=vocabulary_size)
    splits = {
        split: encoded_split(name, split, tokens[split], labels.get(split), vocabulary, len(class_names))
        for split in tokens
    }
    return TextClassDataset(
        name,
        splits["train"],
        splits.get("dev"),
        splits["test"],
        list(class_names),
        vocabulary=vocabulary,
        cut_texts=cut_texts,
        max_text_tokens=max_text_tokens,
    )


def encoded_split(
    name: str,
    split: str,
    tokens: list[list[str]],
    labels: np.ndarray | None,
    vocabulary: Vocabulary,
    num_classes: int,
) -> TextClassSplit:
    """One split's tokens as padded word ids, with its labels checked against the classes."""
    if labels is None:
        raise DataError(f"data set {name!r}: the {split} split has texts but no labels")
    labels = np.asarray(labels)
    if labels.shape != (len(tokens),):
        raise DataError(
            f"data set {name!r}: the {split} split has {len(tokens):,} texts but labels of shape "
            f"{labels.shape}"
        )
    check_labels(labels, num_classes, f"data set {name!r}, {split} split")
    ids, lengths = padded_ids([vocabulary.encode(words) for words in tokens], vocabulary.index[PAD])
    return TextClassSplit(ids, torch.from_numpy(labels.astype(np.int64)), lengths)


def padded_ids(sequences: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, L)`` int64 ids, each row padded with ``pad`` to the longest (at least 1 wide, so an
    empty text is one padding position), and the ``(N,)`` lengths."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = max(int(lengths.max(initial=0)), 1)
    ids = np.full((len(sequences), width), pad, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
    return torch.from_numpy(ids), torch.from_numpy(lengths)
