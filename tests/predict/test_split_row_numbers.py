"""``labelemb predict --split`` names each row as its file numbers it (issue 99, point 2): a train
split whose dev was carved from it keeps the file's row numbers, a split of several files names
each row's file, an image folder's rows are its image files, and a named data set's rows are
numbered in its split."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers.predict_helpers import (
    predict,
    read_output,
    text_table,
    train_folder_run,
    train_text_run,
)

import labelemb
from labelemb.data import Split
from labelemb.predict.reading import split_names, split_rows

pytestmark = pytest.mark.usefixtures("one_thread")


def file_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's data rows (row n of the file is item n - 1)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_carved_train_split_is_numbered_as_its_file(tmp_path):
    run, _ = train_text_run(tmp_path)  # 90 rows in train.csv; 10 % of them carved as dev
    table = file_rows(tmp_path / "train.csv")
    assert predict(run, "--input", tmp_path / "train.csv", "--output", tmp_path / "whole.csv") == 0
    whole = {row["row"]: row for row in read_output(tmp_path / "whole.csv")}
    numbers = []
    for split in ("train", "dev"):
        assert predict(run, "--split", split, "--output", tmp_path / f"{split}-predicted.csv") == 0
        for row in read_output(tmp_path / f"{split}-predicted.csv"):
            # The file's row of that number: its label, and the very text (the same prediction
            # and probability as the row of that number of the whole file given as --input).
            assert row["label"] == table[int(row["row"]) - 1]["label"], (split, row["row"])
            same = whole[row["row"]]
            assert (row["prediction"], row["probability"]) == (same["prediction"], same["probability"])
            numbers.append(int(row["row"]))
    # Train and dev hold the file's 90 rows between them, each once, and train's are not 1..81.
    assert sorted(numbers) == list(range(1, 91)) and numbers[:81] != list(range(1, 82))


def test_a_split_of_several_files_names_each_rows_file(tmp_path):
    text_table(tmp_path / "a.csv", 45, 7)
    text_table(tmp_path / "b.csv", 45, 8)
    run, _ = train_text_run(tmp_path, train=["a.csv", "b.csv"])
    rows = split_rows(labelemb.load(run).trained, "train", None)
    assert rows.name_column == "row" and rows.files is not None and len(rows.files) == len(rows.names)
    tables = {name: file_rows(tmp_path / name) for name in ("a.csv", "b.csv")}
    for i, label in enumerate(rows.labels):
        record = rows.record(i)
        assert list(record) == ["file", "row"]
        name = Path(record["file"]).name
        assert tables[name][int(record["row"]) - 1]["label"] == label
        assert rows.places[i] == f"{record['file']}, row {record['row']}"
    assert {Path(file).name for file in rows.files} == {"a.csv", "b.csv"}
    # The command writes the same: a file column before the row's number in it.
    assert predict(run, "--split", "train", "--output", tmp_path / "out.csv") == 0
    written = read_output(tmp_path / "out.csv")
    assert list(written[0])[:2] == ["file", "row"]
    records = [rows.record(i) for i in range(len(written))]
    assert [{"file": r["file"], "row": r["row"]} for r in written] == records
    # A split of one file has no file column: its rows are numbered in that file.
    test = split_rows(labelemb.load(run).trained, "test", None)
    assert test.files is None and test.record(0) == {"row": "1"}


def test_an_image_folders_split_names_each_image_file(tmp_path):
    run, _ = train_folder_run(tmp_path)
    for split in ("train", "dev"):
        rows = split_rows(labelemb.load(run).trained, split, None)
        assert rows.name_column == "file" and rows.files is None
        for name, label in zip(rows.names, rows.labels):
            path = Path(name)
            assert path.is_file() and path.parent.name == label and path.parent.parent == tmp_path / "train"


def test_a_split_that_records_no_files_is_numbered_in_its_own_order():
    # A named data set's split (digits, MNIST): its place in the split, as before.
    held = Split(torch.zeros(3, 2), torch.arange(3))
    rows = split_names(held)
    assert (rows.name_column, rows.names, rows.files) == ("row", ["1", "2", "3"], None)
