"""A text corpus as tensors for the training loop: what :class:`~labelemb.data.Dataset` is for images.

:func:`load_text_dataset` reads a corpus (:func:`~labelemb.data.text.corpus.load_corpus`), builds or reads
its vocabularies and holds each split as padded id tensors (:class:`TextPairs`), so that a batch
is an index slice as for images. The target vocabulary is the label set of the method.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..base import DataError
from .corpus import (
    BOS,
    EOS,
    MAX_TRAIN_TOKENS,
    MAX_VOCABULARY,
    PAD,
    TextCorpus,
    TextSplit,
    Vocabulary,
    corpus_layout,
    load_corpus,
    pad_batch,
    read_corpus,
)

logger = logging.getLogger(__name__)

#: Dev and test sources are cut to this many tokens at evaluation by default: the model reads no more.
MAX_EVAL_SOURCE_TOKENS = 400


@dataclass
class TextPairs:
    """One split as tensors: source ids ``(N, S)``, target ids framed by ``<s>`` ... ``</s>`` ``(N, T + 2)``.

    Both are padded with id 0 to the split's longest sentence; ``source_lengths`` and
    ``target_lengths`` (N,) count real tokens (the target's with its ``<s>`` and ``</s>``). The
    token lists stay on the CPU: the source for ``<unk>`` replacement, the target as the
    reference that decoded output is scored against (its own words, never ``<unk>``).
    """

    source: Tensor
    target: Tensor
    source_lengths: Tensor
    target_lengths: Tensor
    source_tokens: list[list[str]]
    reference_tokens: list[list[str]]

    def __len__(self) -> int:
        return int(self.source.shape[0])

    def to(self, device: torch.device) -> TextPairs:
        """This split with its tensors on ``device``."""
        return replace(
            self,
            source=self.source.to(device),
            target=self.target.to(device),
            source_lengths=self.source_lengths.to(device),
            target_lengths=self.target_lengths.to(device),
        )


@dataclass
class TextDataset:
    """A parallel corpus ready for training: its splits as :class:`TextPairs` and both vocabularies."""

    #: What it holds, for the choice of task and backbone (see :mod:`labelemb.data.registry`).
    yields: ClassVar[str] = "token_pairs"

    name: str
    train: TextPairs
    dev: TextPairs
    test: TextPairs
    source_vocabulary: Vocabulary
    target_vocabulary: Vocabulary
    #: Test examples whose source and target lines both occur as a training pair.
    test_in_train: list[bool]
    #: Training pairs left out for their length.
    dropped_long: int
    #: "bleu" or "rouge".
    metric: str
    #: Training pairs left out because a side has no tokens (an empty line).
    dropped_empty: int = 0
    #: Dev and test sources cut to the evaluation limit (``max_eval_source_tokens``).
    cut_eval_sources: int = 0
    #: What a run's summary records of the data beyond its name (see Dataset.details).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        """The method's labels: the target vocabulary."""
        return self.target_vocabulary.tokens

    @property
    def num_classes(self) -> int:
        return len(self.target_vocabulary)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """What a sequence model is built for: (source vocabulary size, target vocabulary size)."""
        return (len(self.source_vocabulary), len(self.target_vocabulary))


def encode_split(split: TextSplit, source: Vocabulary, target: Vocabulary) -> TextPairs:
    """Token lists -> padded id tensors (see :class:`TextPairs`)."""
    source_ids = [source.encode(tokens) for tokens in split.source]
    target_ids = [target.encode(tokens) for tokens in split.target]
    return TextPairs(
        source=pad_batch(source_ids, pad=source.index[PAD]),
        target=pad_batch(target_ids, pad=target.index[PAD], bos=target.index[BOS], eos=target.index[EOS]),
        source_lengths=torch.tensor([len(s) for s in source_ids], dtype=torch.long),
        target_lengths=torch.tensor([len(t) + 2 for t in target_ids], dtype=torch.long),
        source_tokens=split.source,
        reference_tokens=split.target,
    )


def load_text_dataset(
    name: str,
    data_dir: str | Path | None,
    *,
    max_train_pairs: int | None = None,
    max_source_tokens: int | None = MAX_TRAIN_TOKENS,
    max_target_tokens: int | None = MAX_TRAIN_TOKENS,
    truncate_source: int | None = None,
    vocabulary_size: int = MAX_VOCABULARY,
    shared_vocabulary: bool = False,
    source_vocabulary_file: str | None = None,
    target_vocabulary_file: str | None = None,
    tokenizer: str | None = None,
    max_eval_source_tokens: int | None = MAX_EVAL_SOURCE_TOKENS,
    split_files: dict[str, tuple[Path, Path]] | None = None,
    metric: str | None = None,
) -> TextDataset:
    """Read registered corpus ``name`` (see :mod:`labelemb.data.text.corpora`) from ``data_dir`` as tensors.

    Training pairs with more than ``max_source_tokens`` source or ``max_target_tokens`` target
    tokens are dropped (released: 50 each; dev and test never are). ``truncate_source`` cuts every
    source sentence of every split to its first that many tokens: what the model reads, the same
    for all splits (no test example is left out). ``max_eval_source_tokens`` cuts dev and test
    sources longer than that (one scraped line of 100,000 tokens would otherwise make every check
    decode for hours); how many were cut is ``cut_eval_sources``. Vocabularies come from the training data
    (``vocabulary_size`` entries at most, specials included; one for both sides with
    ``shared_vocabulary``) or from one-token-per-line files.

    ``split_files`` (each split's source and target file) reads any line-aligned files instead of
    a registered corpus; ``metric`` (bleu or rouge) then says what judges it.
    """
    corpus, metric = _read_corpus(
        name,
        data_dir,
        split_files,
        metric,
        (max_source_tokens, max_target_tokens),
        max_train_pairs,
        tokenizer,
    )
    splits, cut = _cut_splits(name, corpus, truncate_source, max_eval_source_tokens)
    train = corpus.train
    if shared_vocabulary:
        source_vocabulary = target_vocabulary = _vocabulary(
            source_vocabulary_file, train.source + train.target, vocabulary_size
        )
    else:
        source_vocabulary = _vocabulary(source_vocabulary_file, train.source, vocabulary_size)
        target_vocabulary = _vocabulary(target_vocabulary_file, train.target, vocabulary_size)
    encoded = {
        key: encode_split(split, source_vocabulary, target_vocabulary) for key, split in splits.items()
    }
    return TextDataset(
        name=name,
        train=encoded["train"],
        dev=encoded["dev"],
        test=encoded["test"],
        source_vocabulary=source_vocabulary,
        target_vocabulary=target_vocabulary,
        test_in_train=corpus.test_in_train,
        dropped_long=corpus.dropped_long,
        metric=metric or "bleu",
        dropped_empty=corpus.dropped_empty,
        cut_eval_sources=cut,
    )


def _read_corpus(
    name: str,
    data_dir: str | Path | None,
    split_files: dict[str, tuple[Path, Path]] | None,
    metric: str | None,
    limits: tuple[int | None, int | None],
    max_train_pairs: int | None,
    tokenizer: str | None,
) -> tuple[TextCorpus, str | None]:
    """The registered corpus ``name`` (its metric from its layout) or the line-aligned
    ``split_files`` (with ``metric``); a :class:`DataError` if every test pair is also a training pair."""
    if split_files is None:
        corpus = load_corpus(
            name,
            find_corpus(name, data_dir),
            max_train_tokens=limits,
            max_train_pairs=max_train_pairs,
            tokenizer=tokenizer,
        )
        metric = corpus_layout(name).metric
    else:
        corpus = read_corpus(
            name,
            split_files,
            tokenizer=tokenizer or "words",
            max_train_tokens=limits,
            max_train_pairs=max_train_pairs,
        )
    if all(corpus.test_in_train):
        raise DataError(
            f"corpus {name}: every test pair also occurs in the training files, so no test score can "
            "be quoted (scores leave such pairs out); use a test set disjoint from training"
        )
    return corpus, metric


def _cut_splits(
    name: str, corpus: TextCorpus, truncate_source: int | None, max_eval_source_tokens: int | None
) -> tuple[dict[str, TextSplit], int]:
    """The corpus's splits with their sources cut (``truncate_source`` all of them, then
    ``max_eval_source_tokens`` dev and test), and how many dev and test sources the second cut."""
    splits = {"train": corpus.train, "dev": corpus.dev, "test": corpus.test}
    if truncate_source is not None:
        splits = {key: _truncated(split, truncate_source) for key, split in splits.items()}
    cut = 0
    if max_eval_source_tokens is not None:
        for key in ("dev", "test"):
            cut += sum(len(tokens) > max_eval_source_tokens for tokens in splits[key].source)
            splits[key] = _truncated(splits[key], max_eval_source_tokens)
    if corpus.dropped_empty or cut:
        logger.info(
            "%s: %d training pair(s) with an empty side left out; %d dev/test source(s) cut to %s tokens",
            name,
            corpus.dropped_empty,
            cut,
            max_eval_source_tokens,
        )
    return splits, cut


def find_corpus(name: str, data_dir: str | Path | None) -> Path:
    """The folder that holds corpus ``name``: ``data_dir``, then ``$LABELEMB_DATA``, each itself or its
    home subfolder (``debian-ddtp/``, ...); a :class:`DataError` naming every place searched if none does."""
    layout = corpus_layout(name)
    first_file = f"{layout.splits['train']}.{layout.source}"
    roots = [Path(d) for d in (data_dir, os.environ.get("LABELEMB_DATA")) if d]
    searched = [folder for root in roots for folder in (root, root / layout.home)]
    for folder in searched:
        if (folder / layout.folder / first_file).is_file():
            return folder
    places = ", ".join(str(folder / layout.folder) for folder in searched) or "nowhere (no data.dir given)"
    raise DataError(
        f"corpus {name} not found: no {first_file} in {places}. Get it from {layout.where} and "
        "pass its folder as --data-dir (or data.dir, or $LABELEMB_DATA)"
    )


def _truncated(split: TextSplit, limit: int) -> TextSplit:
    return TextSplit([tokens[:limit] for tokens in split.source], split.target, split.references)


def _vocabulary(path: str | None, sentences: list[list[str]], size: int) -> Vocabulary:
    return Vocabulary.read(path) if path is not None else Vocabulary.build(sentences, max_size=size)
