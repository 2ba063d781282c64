"""Texts with one label each (text classification): word ids padded into a tensor, and their vocabulary.
Texts with a set of tags each are built here too, as :mod:`~labelemb.data.text.tagged` says.

A text becomes tokens with one of :data:`~labelemb.data.text.corpus.TOKENIZERS`, is cut to its first
``max_text_tokens`` tokens (what the model reads), and becomes word ids with a
:class:`~labelemb.data.text.corpus.Vocabulary` built from the training texts alone (``<pad>`` 0, ``<unk>``
1 first; a dev or test word it lacks is ``<unk>``). Each split holds its ids as one int64 ``(N, L)``
tensor padded with ``<pad>`` (``L``: the split's longest kept text) and each text's length, so a
batch can be cut to its own longest text.

A pretrained text encoder (``text_encoder``: the folder of its Hugging Face tokenizer) reads its
own tokenizer's ids instead: each text is encoded as that tokenizer does it, special tokens
included (``[CLS] ... [SEP]``), cut to the encoder's length limit, and the data set's vocabulary is
the tokenizer's tokens in id order (:class:`EncoderVocabulary`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...hub import offline
from ..base import DataError, Dataset, Split, check_labels, labels_tensor
from .corpus import PAD, TOKENIZERS, Vocabulary

#: The split names a text-classification data set is given, in order.
SPLIT_NAMES = ("train", "dev", "test")
#: Where a sentence-transformers folder keeps the length it encodes texts to (``max_seq_length``).
SENTENCE_CONFIG = "sentence_bert_config.json"
#: A tokenizer's ``model_max_length`` at or above this means "no limit" (transformers' sentinel is 1e30).
NO_LENGTH_LIMIT = 10**9


@dataclass
class TextClassSplit(Split):
    """One split of texts: ``inputs`` int64 ``(N, L)`` word ids padded with 0, ``labels`` (class ids
    ``(N,)``, or tag sets bool ``(N, K)``) and ``lengths`` ``(N,)``, each text's tokens (the ids of
    text ``i`` are ``inputs[i, :lengths[i]]``)."""

    lengths: torch.Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inputs.dim() != 2 or self.inputs.dtype != torch.int64:
            raise ValueError(
                f"TextClassSplit.inputs must be int64 word ids (N, L), got {self.inputs.dtype} "
                f"{tuple(self.inputs.shape)}"
            )
        if tuple(self.lengths.shape) != (len(self),):
            raise ValueError(f"TextClassSplit has {tuple(self.lengths.shape)} lengths for {len(self)} texts")

    def to(self, device: torch.device) -> TextClassSplit:
        return TextClassSplit(
            self.inputs.to(device), self.labels.to(device), self.lengths.to(device), origins=self.origins
        )

    def first(self, count: int) -> TextClassSplit:
        return TextClassSplit(
            self.inputs[:count], self.labels[:count], self.lengths[:count], origins=self.first_origins(count)
        )


class EncoderVocabulary(Vocabulary):
    """A pretrained tokenizer's tokens in id order, as they are: token ``i`` is id ``i``, its own
    specials (``[PAD]`` 0, ``[UNK]``, ``[CLS]``, ...) where it keeps them, none of ours prepended.
    A hole in the tokenizer's ids (none in BERT's) is the placeholder ``<unused id N>``."""

    def __init__(self, tokens: Iterable[str], *, pad: str | None = None, unknown: str | None = None) -> None:
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self.pad, self.unknown = pad, unknown

    @classmethod
    def of_tokenizer(cls, tokenizer: Any) -> EncoderVocabulary:
        """The tokens of a Hugging Face tokenizer, ids ``0 .. len(tokenizer) - 1``."""
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        return cls(
            (token if token is not None else f"<unused id {i}>" for i, token in enumerate(tokens)),
            pad=tokenizer.pad_token,
            unknown=tokenizer.unk_token,
        )

    def encode(self, tokens: list[str]) -> list[int]:
        unknown = None if self.unknown is None else self.index.get(self.unknown)
        if unknown is None:
            return [self.index[token] for token in tokens]
        return [self.index.get(token, unknown) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` without padding."""
        return [self.tokens[i] for i in ids if self.tokens[i] != self.pad]


@dataclass
class TextClassDataset(Dataset):
    """Texts to classes: :class:`TextClassSplit` splits, the training vocabulary (or a pretrained
    encoder's tokens, :class:`EncoderVocabulary`, with ``text_encoder`` its tokenizer's folder), and
    how many texts of each split were cut to ``max_text_tokens``. ``input_shape`` is
    ``(len(vocabulary),)``: what a bag-of-words backbone (or a sentence encoder) is built for."""

    yields: str = "texts"
    vocabulary: Vocabulary = field(kw_only=True)
    #: Texts longer than the cap, per split (what the model reads is their first tokens).
    cut_texts: dict[str, int] = field(default_factory=dict, kw_only=True)
    max_text_tokens: int | None = field(default=None, kw_only=True)
    #: The folder of the Hugging Face tokenizer whose ids the splits hold, or None: word ids.
    text_encoder: str | None = field(default=None, kw_only=True)
    #: Each split's texts as read, whole (before tokenising and cutting), in the split's order: what
    #: a model of its own features (TF-IDF) reads; empty where the data set was built from ids.
    texts: dict[str, list[str]] = field(default_factory=dict, kw_only=True, repr=False)

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
    text_encoder: str | None = None,
    dataset_type: type[TextClassDataset] = TextClassDataset,
) -> TextClassDataset:
    """A text-classification data set from raw texts and int64 class ids per split (or, with
    ``dataset_type`` :class:`~labelemb.data.text.tagged.TaggedTextDataset`, bool tag sets (N, K)).

    ``texts`` and ``labels`` have the keys ``train``, ``dev`` and ``test`` (``dev`` may be None or
    missing). Each text is tokenised, cut to ``max_text_tokens`` (None: no cut) and encoded with a
    vocabulary of at most ``vocabulary_size`` entries (specials included) built from the kept
    tokens of the training texts. An empty text is the caller's to refuse; given one, it is kept as
    zero tokens (a bag-of-words model reads it as a zero vector).

    With ``text_encoder`` (the folder of a pretrained encoder's Hugging Face tokenizer, read
    offline) the texts are that tokenizer's ids instead, special tokens included, cut to
    ``max_text_tokens`` or the encoder's own limit, whichever is shorter (:func:`encoder_dataset`);
    ``tokenizer`` and ``vocabulary_size`` are then not used.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}")
    if max_text_tokens is not None and max_text_tokens < 1:
        raise ValueError(f"max_text_tokens must be at least 1 or None, got {max_text_tokens}")
    for required in ("train", "test"):
        if texts.get(required) is None or labels.get(required) is None:
            raise DataError(f"data set {name!r}: the {required} split needs texts and labels")
    if text_encoder is not None:
        return encoder_dataset(name, texts, labels, class_names, text_encoder, max_text_tokens, dataset_type)
    tokens: dict[str, list[list[str]]] = {}
    cut_texts: dict[str, int] = {}
    for split in SPLIT_NAMES:
        split_texts = texts.get(split)
        if split_texts is not None:
            tokens[split], cut_texts[split] = kept_tokens(split_texts, TOKENIZERS[tokenizer], max_text_tokens)
    vocabulary = Vocabulary.build(tokens["train"], max_size=vocabulary_size)
    splits = {
        split: encoded_split(name, split, tokens[split], labels.get(split), vocabulary, len(class_names))
        for split in tokens
    }
    return dataset_type(
        name,
        splits["train"],
        splits.get("dev"),
        splits["test"],
        list(class_names),
        vocabulary=vocabulary,
        cut_texts=cut_texts,
        max_text_tokens=max_text_tokens,
        texts=_read_texts(texts),
    )


def kept_tokens(
    texts: Iterable[str], tokenize: Callable[[str], list[str]], max_text_tokens: int | None
) -> tuple[list[list[str]], int]:
    """Each text's tokens cut to its first ``max_text_tokens`` (None: all of them), and how many
    texts were cut."""
    kept, cut = [], 0
    for text in texts:
        words = tokenize(text)
        if max_text_tokens is not None and len(words) > max_text_tokens:
            words, cut = words[:max_text_tokens], cut + 1
        kept.append(words)
    return kept, cut


def encoder_dataset(
    name: str,
    texts: dict[str, list[str] | None],
    labels: dict[str, np.ndarray | None],
    class_names: list[str],
    text_encoder: str,
    max_text_tokens: int | None = 512,
    dataset_type: type[TextClassDataset] = TextClassDataset,
) -> TextClassDataset:
    """Texts as the ids of the Hugging Face tokenizer in folder ``text_encoder`` (see
    :func:`text_class_dataset`): padded with its pad id, each text cut to
    :func:`encoder_length` tokens, its special tokens counted."""
    tokenizer = load_tokenizer(text_encoder)
    if tokenizer.pad_token_id is None:
        raise DataError(f"the tokenizer in {text_encoder} has no pad token: its texts cannot be padded")
    limit = encoder_length(text_encoder, tokenizer, max_text_tokens)
    vocabulary = EncoderVocabulary.of_tokenizer(tokenizer)
    splits: dict[str, TextClassSplit] = {}
    cut_texts: dict[str, int] = {}
    for split in SPLIT_NAMES:
        split_texts = texts.get(split)
        if split_texts is None:
            continue
        ids, cut_texts[split] = encoder_ids(tokenizer, split_texts, limit)
        splits[split] = id_split(
            name, split, ids, labels.get(split), tokenizer.pad_token_id, len(class_names)
        )
    return dataset_type(
        name,
        splits["train"],
        splits.get("dev"),
        splits["test"],
        list(class_names),
        vocabulary=vocabulary,
        cut_texts=cut_texts,
        max_text_tokens=limit,
        text_encoder=str(text_encoder),
        texts=_read_texts(texts),
    )


def load_tokenizer(folder: str | Path) -> Any:
    """The Hugging Face tokenizer in ``folder``, read offline (the fast one where there is one)."""
    from transformers import AutoTokenizer  # lazy: the examples (Hugging Face transformers) extra

    if not Path(folder).is_dir():
        raise DataError(f"text encoder {folder}: no such folder (it should hold a Hugging Face tokenizer)")
    with offline():
        return AutoTokenizer.from_pretrained(str(folder))


def encoder_length(folder: str | Path, tokenizer: Any, max_text_tokens: int | None) -> int:
    """The tokens a text is cut to, special tokens included: ``max_text_tokens`` or the encoder's
    limit, whichever is smaller. The encoder's limit is the sentence-transformers model's
    ``max_seq_length`` where its folder says one (256 for all-MiniLM-L6-v2: what its ``encode``
    reads), else the tokenizer's ``model_max_length``."""
    sentence_config = Path(folder) / SENTENCE_CONFIG
    encoder_limit = None
    if sentence_config.is_file():
        encoder_limit = json.loads(sentence_config.read_text(encoding="utf-8")).get("max_seq_length")
    if encoder_limit is None:
        encoder_limit = tokenizer.model_max_length
    limits = (encoder_limit, max_text_tokens)
    limit = min((int(n) for n in limits if n is not None and n < NO_LENGTH_LIMIT), default=None)
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    if limit is None:
        raise DataError(
            f"the tokenizer in {folder} sets no length limit: set data.text.max_text_tokens to the "
            "longest input its encoder reads"
        )
    if limit <= specials:
        raise DataError(
            f"max_text_tokens {limit} leaves no room for a text: the encoder's tokenizer adds "
            f"{specials} special tokens; set data.text.max_text_tokens to more than {specials}"
        )
    return limit


def encoder_ids(tokenizer: Any, texts: list[str], limit: int) -> tuple[list[list[int]], int]:
    """Each text's ids as the tokenizer makes them (special tokens included, cut to ``limit`` the
    tokenizer's way), and how many texts were cut. One batch call of the fast tokenizer: a cut
    text's overflow comes back as rows of its own, which tell the cut texts and are dropped."""
    if not texts:
        return [], 0
    ids_only = {"return_attention_mask": False, "return_token_type_ids": False}
    if tokenizer.is_fast:
        encoded = tokenizer(
            texts, truncation=True, max_length=limit, return_overflowing_tokens=True, **ids_only
        )
        # Row j belongs to text owners[j]; a text's rows are consecutive, its own ids first.
        owners = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
        first = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        rows = encoded["input_ids"]
        return [rows[i] for i in first], int((np.bincount(owners, minlength=len(texts)) > 1).sum())
    kept = tokenizer(texts, truncation=True, max_length=limit, **ids_only)["input_ids"]
    whole = tokenizer(texts, **ids_only)["input_ids"]
    return kept, sum(len(w) > len(k) for w, k in zip(whole, kept))


def _read_texts(texts: dict[str, list[str] | None]) -> dict[str, list[str]]:
    """The splits' texts as the data set keeps them (a split without texts left out)."""
    return {split: list(texts[split] or []) for split in SPLIT_NAMES if texts.get(split) is not None}


def encoded_split(
    name: str,
    split: str,
    tokens: list[list[str]],
    labels: np.ndarray | None,
    vocabulary: Vocabulary,
    num_classes: int,
) -> TextClassSplit:
    """One split's tokens as padded word ids, with its labels checked against the classes."""
    return id_split(
        name,
        split,
        [vocabulary.encode(words) for words in tokens],
        labels,
        vocabulary.index[PAD],
        num_classes,
    )


def id_split(
    name: str, split: str, ids: list[list[int]], labels: np.ndarray | None, pad: int, num_classes: int
) -> TextClassSplit:
    """One split's token ids padded with ``pad``, with its labels (class ids, or tag sets (N, K))
    checked against the classes."""
    if labels is None:
        raise DataError(f"data set {name!r}: the {split} split has texts but no labels")
    labels = np.asarray(labels)
    if labels.shape[:1] != (len(ids),) or labels.ndim > 2:
        raise DataError(
            f"data set {name!r}: the {split} split has {len(ids):,} texts but labels of shape {labels.shape}"
        )
    check_labels(labels, num_classes, f"data set {name!r}, {split} split")
    padded, lengths = padded_ids(ids, pad)
    return TextClassSplit(padded, labels_tensor(labels), lengths)


def padded_ids(sequences: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, L)`` int64 ids, each row padded with ``pad`` to the longest (at least 1 wide, so an
    empty text is one padding position), and the ``(N,)`` lengths."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    width = max(int(lengths.max(initial=0)), 1)
    ids = np.full((len(sequences), width), pad, dtype=np.int64)
    total = int(lengths.sum())
    if total:
        # Every id in row-major order, at once: the (N, L) positions before each row's length.
        flat = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=total)
        ids[np.arange(width) < lengths[:, None]] = flat
    return torch.from_numpy(ids), torch.from_numpy(lengths)
