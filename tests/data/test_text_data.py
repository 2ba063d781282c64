"""Parallel text: reading, tokenising, vocabularies, corpora and batches (labelemb.data.text.corpus)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from labelemb.data import DataError
from labelemb.data.text.corpus import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocabulary,
    batch_order,
    characters,
    load_corpus,
    pad_batch,
    read_lines,
    read_parallel,
    whitespace,
    words,
)


def write(path: Path, lines: list[str], compress: bool = False) -> Path:
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def ddtp_folder(root: Path, splits: dict[str, tuple[list[str], list[str]]]) -> Path:
    folder = root / "summarize"
    folder.mkdir(parents=True)
    for stem, (source, target) in splits.items():
        write(folder / f"{stem}.src.gz", source, compress=True)
        write(folder / f"{stem}.tgt.gz", target, compress=True)
    return root


def test_tokenisers():
    assert words("Don't PANIC, it's 3.5 MB!") == [
        "don",
        "'",
        "t",
        "panic",
        ",",
        "it",
        "'",
        "s",
        "3",
        ".",
        "5",
        "mb",
        "!",
    ]
    assert whitespace("  tôi  là \t học_sinh ") == ["tôi", "là", "học_sinh"]
    assert characters("短文 摘要") == ["短", "文", "摘", "要"]


def test_read_lines_plain_and_gzip_alike(tmp_path):
    lines = ["première ligne", "", "third\tline"]
    assert read_lines(write(tmp_path / "a.txt", lines)) == lines
    assert read_lines(write(tmp_path / "a.gz", lines, compress=True)) == lines
    (tmp_path / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    assert read_lines(tmp_path / "crlf.txt") == ["one", "two"]


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fine\ncafé\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt, line 2: bytes that are not UTF-8"):
        read_lines(path)


def test_a_truncated_gzip_file_is_named(tmp_path):
    whole = write(tmp_path / "whole.gz", ["x" * 50] * 200, compress=True).read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cut.gz is not a readable gzip file"):
        read_lines(path)


def test_files_with_different_line_counts_name_both_files_and_counts(tmp_path):
    source = write(tmp_path / "a.en", ["1", "2", "3"])
    target = write(tmp_path / "a.it", ["1", "2"])
    with pytest.raises(DataError, match=r"a.en has 3 lines but .*a.it has 2"):
        read_parallel(source, target)


def test_vocabulary_build_caps_and_orders_by_frequency():
    vocabulary = Vocabulary.build([["b", "a", "b"], ["c", "a", "b", "d"]], max_size=6)
    assert vocabulary.tokens == [PAD, UNK, BOS, EOS, "b", "a"]  # b 3, a 2, then the cap
    assert vocabulary.encode(["a", "zzz"]) == [5, 1]
    assert vocabulary.decode([2, 4, 5, 3, 4]) == ["b", "a"]  # stops at </s>, drops <s>
    assert vocabulary.decode([4, 0, 0]) == ["b"]


def test_vocabulary_file_round_trip_and_stanford_specials(tmp_path):
    stanford = write(tmp_path / "vocab.vi", ["<unk>", "<s>", "</s>", "Khoa", "học"])
    vocabulary = Vocabulary.read(stanford)
    assert vocabulary.tokens == [PAD, UNK, BOS, EOS, "Khoa", "học"]
    vocabulary.write(tmp_path / "saved.txt")
    assert Vocabulary.read(tmp_path / "saved.txt").tokens == vocabulary.tokens
    with pytest.raises(DataError, match="empty vocabulary"):
        Vocabulary.read(write(tmp_path / "empty.txt", []))


def test_corpus_drops_long_training_pairs_only_and_marks_test_pairs_seen_in_training(tmp_path):
    long_line = " ".join(["word"] * 6)
    root = ddtp_folder(
        tmp_path,
        {
            "train": (["a b", long_line, "c d"], ["x", "y", "z"]),
            "valid": ([long_line], ["y"]),
            "test": (["a b", "c d", "e f"], ["x", "q", "r"]),
        },
    )
    corpus = load_corpus("ddtp-summarize", root, max_train_tokens=5)
    assert corpus.train.source == [["a", "b"], ["c", "d"]] and corpus.dropped_long == 1
    assert len(corpus.dev) == 1 and len(corpus.test) == 3  # dev and test are never filtered
    assert corpus.test_in_train == [True, False, False]  # "c d" -> "q" differs from the training pair
    assert corpus.test.references == ["x", "q", "r"]
    assert len(load_corpus("ddtp-summarize", root, max_train_pairs=1).train) == 1


def test_corpus_errors_name_what_is_missing_or_empty(tmp_path):
    root = ddtp_folder(tmp_path, {"train": (["a"], ["b"]), "valid": (["a"], ["b"])})
    with pytest.raises(DataError, match=r"incomplete .* missing .*test.src.gz"):
        load_corpus("ddtp-summarize", root)
    write(root / "summarize" / "test.src.gz", [], compress=True)
    write(root / "summarize" / "test.tgt.gz", [], compress=True)
    with pytest.raises(DataError, match="the test split .* is empty"):
        load_corpus("ddtp-summarize", root)
    with pytest.raises(DataError, match="unknown text corpus 'ddtp'"):
        load_corpus("ddtp", root)


def test_batches_group_similar_lengths_in_an_order_set_by_seed_and_epoch():
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    batches = batch_order(lengths, 20, seed=0, epoch=0)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert batch_order(lengths, 20, seed=0, epoch=0) == batches
    assert batch_order(lengths, 20, seed=0, epoch=1) != batches
    assert batch_order(lengths, 20, seed=1, epoch=0) != batches
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # random batches of 20 would spread over most of 1..50


def test_pad_batch():
    batch = pad_batch([[5, 6], [7]], pad=0, bos=2, eos=3)
    assert batch.tolist() == [[2, 5, 6, 3], [2, 7, 3, 0]]


def test_ddtp_en_it_as_described():
    """The real corpus: split sizes, and the 138 test pairs that also occur in training."""
    root = os.environ.get("LABELEMB_DATA")
    assert root, "LABELEMB_DATA is not set: point it at the folder holding debian-ddtp/"
    folder = Path(root) / "debian-ddtp"
    assert folder.is_dir(), f"{folder} is missing (the Debian DDTP corpora, see the data README)"
    corpus = load_corpus("ddtp-en-it", folder)
    assert (len(corpus.dev), len(corpus.test)) == (1_935, 2_049)
    assert sum(corpus.test_in_train) == 138
    assert len(corpus.train) + corpus.dropped_long == 108_008
