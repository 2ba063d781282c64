"""Damaged text corpora: empty lines, a byte-order mark, a huge test line, a folder for a file, a
misspelt data set name. Each class of damage once silently broke a run or misled the user."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers.repo_paths import CONFIGS

from labelemb.data import DataError
from labelemb.data.text.corpus import load_corpus, read_lines
from labelemb.data.text.sequences import load_text_dataset
from labelemb.models.seq2seq import Seq2Seq
from labelemb.training import ConfigError, build_config, load_config, train

TRAIN_SOURCE = ["the cat sat down", "a dog ran home", "we like hot tea", "it is very late"] * 20
TRAIN_TARGET = ["cat sat", "dog ran", "like tea", "late"] * 20
HELD_OUT = (["the dog sat down", "we ran home"], ["dog sat", "ran home"])


def summarize_corpus(root: Path, splits: dict[str, tuple[list[str], list[str]]], bom: bool = False) -> Path:
    """A corpus in the DDTP summarisation layout (plain text: the reader takes gzip or not alike)."""
    folder = root / "summarize"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (source, target) in splits.items():
        for suffix, lines in (("src.gz", source), ("tgt.gz", target)):
            text = "".join(f"{line}\n" for line in lines).encode("utf-8")
            (folder / f"{stem}.{suffix}").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text)
    return root


def quick_config(data: Path, output: Path, *extra: str):
    return load_config(
        CONFIGS / "ddtp-summarize.yaml",
        [
            f"data.dir={data}",
            f"output_dir={output}",
            "model.embedding=16",
            "model.hidden=16",
            "train.batch_size=8",
            "train.max_steps=12",
            "train.eval_every=48",
            "train.progress=false",
            "decode.max_length=4",
            *extra,
        ],
    )


# ---------------------------------------------------------------- empty lines


def test_training_pairs_with_an_empty_side_are_dropped_and_counted(tmp_path):
    source, target = list(TRAIN_SOURCE), list(TRAIN_TARGET)
    source[3], target[5] = "", "   "  # a description without text; a blank synopsis
    root = summarize_corpus(
        tmp_path,
        {"train": (source, target), "valid": (["", *HELD_OUT[0]], ["x", *HELD_OUT[1]]), "test": HELD_OUT},
    )
    corpus = load_corpus("ddtp-summarize", root)
    assert corpus.dropped_empty == 2 and len(corpus.train) == len(source) - 2
    assert all(side for pair in zip(corpus.train.source, corpus.train.target) for side in pair)
    assert len(corpus.dev) == 3 and corpus.dev.source[0] == []  # dev and test keep every example


def test_an_empty_line_in_training_never_reaches_the_model_as_nan(tmp_path, one_thread):
    source, target = list(TRAIN_SOURCE), list(TRAIN_TARGET)
    source[3], target[5] = "", ""
    data = summarize_corpus(
        tmp_path / "data",
        {"train": (source, target), "valid": (["", *HELD_OUT[0]], ["x", *HELD_OUT[1]]), "test": HELD_OUT},
    )
    config = quick_config(data, tmp_path / "runs")
    summary = train(config)
    run = config.run_dir()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [value for r in records for key, value in r.items() if "loss" in key]
    assert losses and all(math.isfinite(v) for v in losses)
    weights = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    assert summary["dropped_empty_pairs"] == 2
    dev = (run / summary["selected_outputs"] / "dev.txt").read_text(encoding="utf-8").splitlines()
    assert len(dev) == 3  # the empty dev source decoded too


@pytest.mark.parametrize("width", [0, 3])
def test_an_empty_source_gives_finite_features_in_training_and_decoding(width):
    torch.manual_seed(0)
    model = Seq2Seq(10, 12, embedding=8, hidden=8, layers=1, dropout=0.0)
    source = (
        torch.tensor([[4, 5, 6], [0, 0, 0]])[:, :width] if width else torch.zeros((2, 0), dtype=torch.long)
    )
    target_in = torch.tensor([[2, 7, 8], [2, 9, 0]])
    features = model(source, target_in)
    assert features.shape == (2, 3, 8) and torch.isfinite(features).all()
    features.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    encoded = model.encode(source)
    assert encoded.mask.sum(1).tolist() == ([3, 1] if width else [1, 1])


def test_a_non_empty_source_is_encoded_as_before_beside_an_empty_one():
    torch.manual_seed(0)
    model = Seq2Seq(10, 12, embedding=8, hidden=8, layers=1, dropout=0.0)
    target_in = torch.tensor([[2, 7, 8]])
    alone = model(torch.tensor([[4, 5, 6]]), target_in)
    beside = model(torch.tensor([[4, 5, 6], [0, 0, 0]]), target_in.repeat(2, 1))
    torch.testing.assert_close(beside[:1], alone)


# ---------------------------------------------------------------- byte-order mark


def test_a_byte_order_mark_never_becomes_part_of_a_token(tmp_path):
    path = tmp_path / "train.en"
    path.write_bytes(b"\xef\xbb\xbfhello world\nsecond line\n")
    assert read_lines(path) == ["hello world", "second line"]
    root = summarize_corpus(
        tmp_path / "data",
        {"train": (TRAIN_SOURCE, TRAIN_TARGET), "valid": HELD_OUT, "test": HELD_OUT},
        bom=True,
    )
    data = load_text_dataset("ddtp-summarize", root)
    for vocabulary in (data.source_vocabulary, data.target_vocabulary):
        assert not any("\ufeff" in token for token in vocabulary.tokens)
    assert data.train.source_tokens[0][0] == "the"


# ---------------------------------------------------------------- a huge test line


def test_a_huge_test_source_is_cut_and_counted(tmp_path):
    huge = " ".join(["word"] * 100_000)
    root = summarize_corpus(
        tmp_path,
        {
            "train": (TRAIN_SOURCE, TRAIN_TARGET),
            "valid": HELD_OUT,
            "test": ([huge, *HELD_OUT[0]], ["x", *HELD_OUT[1]]),
        },
    )
    data = load_text_dataset("ddtp-summarize", root)
    assert data.cut_eval_sources == 1
    assert data.test.source.shape[1] == 400 and int(data.test.source_lengths.max()) == 400
    assert data.test.source_lengths.tolist()[1:] == [4, 3]  # the others are untouched
    uncapped = load_text_dataset("ddtp-summarize", root, max_eval_source_tokens=None)
    assert uncapped.cut_eval_sources == 0 and int(uncapped.test.source_lengths.max()) == 100_000


def test_a_run_with_a_huge_test_line_finishes_and_says_how_many_were_cut(tmp_path, one_thread, caplog):
    huge = " ".join(["word"] * 100_000)
    data = summarize_corpus(
        tmp_path / "data",
        {
            "train": (TRAIN_SOURCE, TRAIN_TARGET),
            "valid": HELD_OUT,
            "test": ([huge, *HELD_OUT[0]], ["x", *HELD_OUT[1]]),
        },
    )
    config = quick_config(data, tmp_path / "runs", "decode.length_ratio=1.5", "decode.max_source_tokens=50")
    with caplog.at_level("INFO", logger="labelemb"):
        summary = train(config)
    assert summary["cut_eval_sources"] == 1
    assert "1 dev/test source(s) cut to 50 tokens" in caplog.text
    test = (config.run_dir() / summary["selected_outputs"] / "test.txt").read_text(encoding="utf-8")
    assert all(len(line.split()) <= 1.5 * 50 + 4 for line in test.splitlines())


# ---------------------------------------------------------------- a folder where a file should be


def test_a_folder_in_place_of_a_corpus_file_is_named_as_a_folder(tmp_path):
    root = summarize_corpus(tmp_path, {"train": (TRAIN_SOURCE, TRAIN_TARGET), "valid": HELD_OUT})
    (root / "summarize" / "test.src.gz").mkdir()
    (root / "summarize" / "test.tgt.gz").write_text("x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.src\.gz is a folder, not a file"):
        load_corpus("ddtp-summarize", root)
    with pytest.raises(DataError, match="is a folder, not a file"):
        read_lines(root / "summarize" / "test.src.gz")


# ---------------------------------------------------------------- a misspelt data set


def test_a_misspelt_data_name_is_refused_with_the_config_before_any_folder_is_made(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown data set \(data.name\) 'fashion-mnst'; did you mean 'fashion-mnist'"
    ):
        build_config({"data": {"name": "fashion-mnst"}, "output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="did you mean 'ddtp-en-it'"):
        build_config({"data": {"name": "ddtp-en-itt"}, "model": {"name": "seq2seq"}})
    assert not any(tmp_path.iterdir())
    assert (
        build_config({"data": {"name": "Fashion_MNIST"}}).data.name == "Fashion_MNIST"
    )  # as load_dataset reads it
