"""labelemb label-issues --split test (issue 101): the test split's rows ranked, as for MNIST's
test images whose labels people disputed. A test CSV with labels flipped on purpose (its rows
shuffled), a clean training CSV: the folds train on the test file's other folds alone, the flipped
test rows lead, and each listed row is the test file's row of that number; a split without row
origins is numbered in its own order; a noise section with --split test, and an unknown split,
are refused in one line before any data is read."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import labelemb
from labelemb.assembly import load_run_data
from labelemb.cli import main
from labelemb.data import Dataset, Split
from labelemb.label_issues import LabelIssuesError, cross_fit
from labelemb.label_issues.listing import SUMMARY_JSON
from labelemb.label_issues.splits import searched_split
from labelemb.training import build_config

pytestmark = pytest.mark.usefixtures("one_thread")

TEST_ROWS, FLIPS = 150, 8
WORDS = {
    "animal": ["cat", "dog", "horse", "cow", "sheep", "goat"],
    "vehicle": ["car", "bus", "train", "bike", "truck", "tram"],
    "food": ["bread", "cheese", "apple", "rice", "soup", "pear"],
}


def write_table(path: Path, count: int, seed: int, flips: int) -> list[dict[str, str]]:
    """A CSV (text, label) of texts of :data:`WORDS`' classes in a shuffled order, ``flips`` of its
    labels moved to the next class (each row's ``true`` label kept in the rows returned)."""
    rng = np.random.default_rng(seed)
    names = list(WORDS)
    rows = []
    for i in rng.permutation(count):
        label = names[int(i) % 3]
        rows.append({"text": " ".join(rng.choice(WORDS[label], 4)), "label": label, "true": label})
    for i in rng.choice(count, flips, replace=False):
        rows[i]["label"] = names[(names.index(rows[i]["true"]) + 1) % 3]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([row["text"], row["label"]] for row in rows)
    return rows


def raw_config(folder: Path) -> dict[str, Any]:
    return {
        "experiment": "flips",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": {"train": "train.csv", "test": "test.csv"}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 4, "batch_size": 10, "lr": 0.05, "progress": False},
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The test table (flips in it), its search (3 folds) and each fold's training rows (file, row)."""
    folder = tmp_path_factory.mktemp("test-split")
    write_table(folder / "train.csv", 60, 0, 0)
    table = write_table(folder / "test.csv", TEST_ROWS, 1, FLIPS)
    trained: list[set[tuple[str, int]]] = []
    real_train = cross_fit.train

    def recording(run, *, dataset, progress):
        origins = dataset.train.origins
        trained.append({(origins.file(i), origins.row(i)) for i in range(len(origins))})
        return real_train(run, dataset=dataset, progress=progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cross_fit, "train", recording)
        issues = labelemb.find_label_issues(raw_config(folder), folds=3, split="test", progress=False)
    return folder, table, issues, trained


def test_the_flipped_test_rows_lead_each_named_by_its_row_in_the_test_file(searched):
    _, table, issues, _ = searched
    assert len(issues.rows) == TEST_ROWS
    assert sorted(row["row"] for row in issues.rows) == list(range(1, TEST_ROWS + 1))
    for row in issues.rows:
        assert Path(row["file"]).name == "test.csv"
        assert row["given_label"] == table[row["row"] - 1]["label"], row
    flipped = {i + 1 for i, row in enumerate(table) if row["label"] != row["true"]}
    assert {row["row"] for row in issues.rows[:FLIPS]} == flipped
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    assert issues.folder.name == "onehot-k3-seed0-test" and summary["split"] == "test"
    assert summary["judged"] is None and "wrong" not in issues.rows[0]


def test_each_fold_trained_on_the_test_files_other_folds_alone(searched):
    _, _, issues, trained = searched
    assert len(trained) == 3
    listed = {(row["file"], row["row"]): row["fold"] for row in issues.rows}
    for k, rows in enumerate(trained):
        held = {key for key, fold in listed.items() if fold == k + 1}
        assert held and not held & rows and held | rows == set(listed)  # no training-file row among them


def test_the_command_searches_the_test_split(searched, capsys):
    folder, _, issues, _ = searched
    config = folder / "flips.yaml"
    config.write_text(json.dumps(raw_config(folder)), encoding="utf-8")  # JSON is YAML
    argv = ["label-issues", "--config", str(config), "--folds", "3", "--split", "test", "--no-progress"]
    assert main([*argv, "--top", "3"]) == 0  # the finished folds are read back
    first = issues.rows[0]
    assert (
        f"1. flagged {first['file']}, row {first['row']}: given {first['given_label']!r}"
        in capsys.readouterr().out
    )
    assert Path(first["file"]).name == "test.csv"


def test_a_split_without_origins_is_numbered_in_its_order():
    images, labels = torch.rand(12, 1, 2, 2), torch.arange(12) % 2
    dataset = Dataset("tiny", Split(images[:8], labels[:8]), None, Split(images[8:], labels[8:]), ["a", "b"])
    searched = searched_split(dataset, "test")
    assert torch.equal(searched.train.inputs, images[8:]) and torch.equal(searched.test.inputs, images[:8])
    origins = searched.train.origins
    assert [origins.file(i) for i in range(4)] == ["tiny [test]"] * 4
    assert [origins.row(i) for i in range(4)] == [1, 2, 3, 4]
    assert searched_split(dataset, "train") is dataset


def test_a_text_data_sets_texts_follow_their_split(searched):
    folder, table, _, _ = searched
    dataset = load_run_data(build_config(raw_config(folder)))
    searched_texts = searched_split(dataset, "test")
    assert searched_texts.texts["train"] == [row["text"] for row in table]
    assert searched_texts.texts["test"] == dataset.texts["train"]
    assert searched_texts.vocabulary is dataset.vocabulary  # the training file's, as every run's


@pytest.mark.parametrize(
    ("split", "noise", "words"),
    [
        ("test", {"kind": "symmetric", "rate": 0.2}, "--split test: the noise: section makes the training"),
        ("dev", None, "--split 'dev': label-issues ranks the rows of train or test"),
    ],
)
def test_a_split_that_cannot_be_searched_is_refused_before_the_data_is_read(tmp_path, split, noise, words):
    config = raw_config(tmp_path)  # no files written: refused before any is read
    if noise:
        config["noise"] = noise
    with pytest.raises(LabelIssuesError) as error:
        labelemb.find_label_issues(config, split=split, progress=False)
    assert str(error.value).startswith(words) and "\n" not in str(error.value)
