"""Line-aligned parallel text for sequence-to-sequence tasks (Sun et al. 2017, Section 3.3).

A corpus is a folder of line-aligned files, plain or gzip, UTF-8: line ``i`` of the source file
and line ``i`` of the target file are one example. The corpora of :mod:`labelemb.data.text.corpora`
each have a :class:`Layout`: the Debian DDTP corpora (``summarize/{train,valid,test}.{src,tgt}.gz``,
``translate-en-it/{train,valid,test}.{en,it}.gz``), the Stanford IWSLT'15 release
(``train.en/.vi``, ``tst2012``, ``tst2013``, ``vocab.en/.vi``) and LCSTS prepared as
source/summary line files. Text becomes tokens with one of :data:`TOKENIZERS` and token ids with
a :class:`Vocabulary` built from the training data (or read from a vocabulary file).
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import torch

from ..base import DataError
from ..registry import DATASETS

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
#: The release's vocabulary cap.
MAX_VOCABULARY = 50_000
#: The release drops training pairs longer than this many tokens (either side); dev and test never.
MAX_TRAIN_TOKENS = 50

_WORD = re.compile(r"\w+|[^\w\s]")
UTF8_BOM = b"\xef\xbb\xbf"


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: ``"Don't panic!"`` -> ``don ' t panic !`` (DDTP text)."""
    return _WORD.findall(text.lower())


def whitespace(text: str) -> list[str]:
    """Lower-cased tokens split at whitespace (IWSLT'15 is tokenised already; the release lower-cased)."""
    return text.lower().split()


def characters(text: str) -> list[str]:
    """Every character but whitespace is a token (LCSTS's Chinese)."""
    return [char for char in text if not char.isspace()]


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "words": words,
    "whitespace": whitespace,
    "characters": characters,
}


@dataclass(frozen=True)
class Layout:
    """A corpus: where it keeps its splits (``folder/{split}.{suffix}`` for each side), how its text
    is tokenised, the score it is judged by and where to get it."""

    folder: str
    source: str  # file suffix of the source side
    target: str
    splits: dict[str, str]  # our split name -> the file stem the corpus uses
    tokenizer: str
    metric: str  # "bleu" (translation) or "rouge" (summarisation)
    home: str  # the folder a data directory keeps it in (searched besides the directory itself)
    where: str  # where it comes from, for the error that says it is missing


def corpus_layout(name: str) -> Layout:
    """The layout of registered corpus ``name``; a :class:`DataError` naming the known ones if none."""
    entry = DATASETS.entry(name) if name in DATASETS else None
    if entry is None or "layout" not in entry.info:
        known = [e.name for e in DATASETS.entries() if "layout" in e.info]
        raise DataError(f"unknown text corpus {name!r}; known: {', '.join(known)}")
    return entry.info["layout"]


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, plain or gzip (by its magic bytes), without line ends.

    A UTF-8 byte-order mark at the start (what Windows editors write) is dropped, as Python's
    ``utf-8-sig`` does, so it never becomes part of the first token. Undecodable bytes and a damaged
    gzip stream raise :class:`DataError` naming the file (and the line).
    """
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise DataError(problem)
    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    try:
        raw = gzip.open(path).read() if compressed else path.read_bytes()
    except (OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable gzip file ({error}); get a fresh copy") from None
    lines = raw.removeprefix(UTF8_BOM).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise DataError(
                f"{path}, line {number}: bytes that are not UTF-8 ({error.reason} at byte {error.start}); "
                "convert the file to UTF-8"
            ) from None
    return decoded


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a corpus file (it does not exist, or is a folder), or None."""
    if path.is_dir():
        return f"{path} is a folder, not a file: a corpus file holds one sentence per line"
    if not path.is_file():
        return f"{path} does not exist"
    return None


def read_parallel(source_path: str | Path, target_path: str | Path) -> tuple[list[str], list[str]]:
    """Both sides of a line-aligned pair of files; different line counts raise :class:`DataError`."""
    source, target = read_lines(source_path), read_lines(target_path)
    if len(source) != len(target):
        raise DataError(
            f"{source_path} has {len(source):,} lines but {target_path} has {len(target):,}: "
            "line i of each must be one example; the files are not aligned"
        )
    return source, target


class Vocabulary:
    """Tokens and their ids: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3, then the tokens.

    Built from training text (:meth:`build`: most frequent first, ties in order of first
    appearance, capped as the release did at 50,000 entries in all) or read from a one-token-per-line
    file (:meth:`read`; the Stanford files' own ``<unk>``, ``<s>``, ``</s>`` map to ours).
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens: list[str] = list(SPECIALS)
        self.tokens += [token for token in dict.fromkeys(tokens) if token not in SPECIALS]
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, sentences: Iterable[list[str]], max_size: int = MAX_VOCABULARY) -> Vocabulary:
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(sentence)
        ranked = [token for token, _ in counts.most_common()]  # ties keep first-seen order
        return cls(ranked[: max(0, max_size - len(SPECIALS))])

    @classmethod
    def read(cls, path: str | Path) -> Vocabulary:
        tokens = [line.strip() for line in read_lines(path) if line.strip()]
        if not tokens:
            raise DataError(f"{path} is an empty vocabulary file: it needs one token per line")
        return cls(tokens)

    def write(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(self.tokens) + "\n", encoding="utf-8")

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        """The ids of ``tokens``, ``<unk>``'s for a token the vocabulary lacks."""
        return list(map(self.index.get, tokens, repeat(self.index[UNK])))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` up to the first ``</s>``, without ``<pad>`` and ``<s>``."""
        out = []
        for i in ids:
            token = self.tokens[i]
            if token == EOS:
                break
            if token not in (PAD, BOS):
                out.append(token)
        return out


@dataclass
class TextSplit:
    """One split: each example's source and target token lists, and the raw target lines (for scoring)."""

    source: list[list[str]]
    target: list[list[str]]
    references: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.source)


@dataclass
class TextCorpus:
    """The three splits of a corpus, and which test examples also occur verbatim in training."""

    name: str
    train: TextSplit
    dev: TextSplit
    test: TextSplit
    test_in_train: list[bool]
    dropped_long: int  # training pairs over the length limit, left out
    dropped_empty: int = 0  # training pairs with a side of no tokens (an empty line), left out


def load_corpus(
    name: str,
    data_dir: str | Path,
    *,
    max_train_tokens: int | None | tuple[int | None, int | None] = MAX_TRAIN_TOKENS,
    max_train_pairs: int | None = None,
    tokenizer: str | None = None,
) -> TextCorpus:
    """Read registered corpus ``name`` (see :mod:`labelemb.data.text.corpora`) from ``data_dir``, tokenised.

    Training pairs with more than ``max_train_tokens`` tokens on either side (or a ``(source,
    target)`` pair of limits, None for none) are dropped (the release's rule, 50 on both sides;
    dev and test pairs never are), and so are training pairs with a side of no tokens (an empty
    line teaches nothing and an empty source has nothing to attend to; an empty dev or test
    source is kept and decodes); ``max_train_pairs`` keeps the first that many
    for quick runs. ``test_in_train`` marks test pairs whose source and target lines both occur
    as a training pair (scores are quoted without them).
    """
    layout = corpus_layout(name)
    folder = Path(data_dir) / layout.folder
    split_files = {
        split: (folder / f"{stem}.{layout.source}", folder / f"{stem}.{layout.target}")
        for split, stem in layout.splits.items()
    }
    return read_corpus(
        name,
        split_files,
        tokenizer=tokenizer or layout.tokenizer,
        max_train_tokens=max_train_tokens,
        max_train_pairs=max_train_pairs,
    )


def read_corpus(
    name: str,
    split_files: dict[str, tuple[Path, Path]],
    *,
    tokenizer: str = "words",
    max_train_tokens: int | None | tuple[int | None, int | None] = MAX_TRAIN_TOKENS,
    max_train_pairs: int | None = None,
) -> TextCorpus:
    """Read a corpus from its (source file, target file) of each split (``train``, ``dev``,
    ``test``), tokenised: any line-aligned files (``train.en`` / ``train.de``, gzip or not). The
    rules are :func:`load_corpus`'s."""
    folder = Path(split_files["train"][0]).parent
    paths = [Path(path) for pair in split_files.values() for path in pair]
    folders = [str(path) for path in paths if path.is_dir()]
    if folders:
        raise DataError(
            f"corpus {name}: {', '.join(folders)} {'is a folder' if len(folders) == 1 else 'are folders'}, "
            "not a file: each split needs its source and target file, one sentence per line"
        )
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise DataError(
            f"corpus {name} is incomplete in {folder}: missing {', '.join(missing)}. "
            "Each split needs its source and target file"
        )
    tokenize = TOKENIZERS[tokenizer]
    raw = {split: read_parallel(*paths) for split, paths in split_files.items()}
    for split, (source, _) in raw.items():
        if not source:
            raise DataError(f"corpus {name}: the {split} split ({split_files[split][0]}) is empty")
    training_pairs = set(zip(*raw["train"]))
    test_in_train = [pair in training_pairs for pair in zip(*raw["test"])]

    def split_of(
        lines: tuple[list[str], list[str]], limits: tuple[int | None, int | None], training: bool = False
    ) -> tuple[TextSplit, int, int]:
        kept, too_long, empty = TextSplit([], [], []), 0, 0
        for source_line, target_line in zip(*lines):
            source, target = tokenize(source_line), tokenize(target_line)
            if training and not (source and target):
                empty += 1
                continue
            if any(limit is not None and len(side) > limit for side, limit in zip((source, target), limits)):
                too_long += 1
                continue
            kept.source.append(source)
            kept.target.append(target)
            kept.references.append(target_line)
        return kept, too_long, empty

    train_lines = raw["train"]
    if max_train_pairs is not None:
        train_lines = (train_lines[0][:max_train_pairs], train_lines[1][:max_train_pairs])
    limits = max_train_tokens if isinstance(max_train_tokens, tuple) else (max_train_tokens,) * 2
    train, too_long, empty = split_of(train_lines, limits, training=True)
    if not len(train):
        if empty == len(train_lines[0]):
            raise DataError(
                f"corpus {name}: every training pair in {split_files['train'][0]} has an empty side"
            )
        raise DataError(
            f"corpus {name}: no training pair has at most {limits[0]} source and {limits[1]} target "
            "tokens; raise the limit (data.text.max_source_tokens / max_target_tokens)"
        )
    return TextCorpus(
        name=name,
        train=train,
        dev=split_of(raw["dev"], (None, None))[0],
        test=split_of(raw["test"], (None, None))[0],
        test_in_train=test_in_train,
        dropped_long=too_long,
        dropped_empty=empty,
    )


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indices, sentences of similar length together, in an order set by (seed, epoch).

    The examples are shuffled, cut into pools of 50 batches, each pool sorted by length and cut into
    batches, and the batches shuffled: little padding, and a different order every epoch that
    the same seed repeats exactly.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        members = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def length_grouped_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """Indices in batches of similar length (:func:`batch_order`), one batch after another.

    The one batch that may be short goes last, so that every ``batch_size`` slice is a batch.
    """
    batches = batch_order(lengths, batch_size, seed, epoch)
    batches.sort(key=lambda batch: len(batch) < batch_size)  # stable: full ones keep their order
    return torch.tensor([i for batch in batches for i in batch], dtype=torch.long)


def pad_batch(
    sequences: list[list[int]], pad: int = 0, bos: int | None = None, eos: int | None = None
) -> torch.Tensor:
    """``(B, T)`` int64: each sequence framed by ``bos`` and ``eos`` (when given), padded with ``pad``."""
    framed = [
        ([bos] if bos is not None else []) + list(s) + ([eos] if eos is not None else []) for s in sequences
    ]
    out = torch.full((len(framed), max((len(s) for s in framed), default=0)), pad, dtype=torch.long)
    for row, sequence in enumerate(framed):
        out[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return out
