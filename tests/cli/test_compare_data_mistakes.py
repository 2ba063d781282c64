"""A mistake in the data a grid trains on is one line and exit 2 before any run starts (issue 79),
as it is for ``train``: not one failure per run and a table of them. Without ``--config`` the
relative file names of the command line are read from the working folder."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from labelemb.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {"a": "apple banana cherry", "b": "dog cat mouse", "c": "red green blue"}


def write_texts(path, rows: int, seed: int, typo_row: int | None = None) -> None:
    generator = np.random.default_rng(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for row in range(rows):
            label = "abc"[generator.integers(3)]
            text = " ".join(generator.choice(WORDS[label].split(), 5))
            writer.writerow([text, "zz" if row == typo_row else label])


@pytest.fixture
def texts(tmp_path, monkeypatch):
    """The working folder, holding train.csv, test.csv and a test file with a class train lacks."""
    write_texts(tmp_path / "train.csv", 60, 0)
    write_texts(tmp_path / "test.csv", 30, 1)
    write_texts(tmp_path / "test_typo.csv", 30, 1, typo_row=4)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def compare(folder, *extra: str) -> list[str]:
    return [
        "compare", "--methods", "onehot,label_smoothing", "--seeds", "0-1", "--no-progress",
        "--output-dir", str(folder / "runs"), "data.name=files", "data.files.format=csv",
        "data.files.train=train.csv", "data.files.test=test.csv", "model.name=bag_of_words",
        "train.epochs=1", "experiment=texts", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        ("data.files.train=train_missing.csv", "train file train_missing.csv not found"),
        ("data.files.test=test_typo.csv", "test_typo.csv, line 6: label 'zz' is not a class"),
    ],
)
def test_a_data_mistake_in_a_grid_is_one_line_before_any_run(texts, capsys, mistake, words):
    code = main(compare(texts, mistake))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("labelemb compare: error: "), captured.err
    assert words in lines[0]
    assert "failed" not in captured.out
    assert not (texts / "runs").exists()  # no run started


def test_pixels_out_of_range_in_an_npz_are_one_line(tmp_path, capsys, monkeypatch):
    pixels = np.random.default_rng(0).random((40, 8, 8)) * 16  # 0..16, as scikit-learn's digits
    labels = np.arange(40) % 3
    arrays = {"x_train": pixels, "y_train": labels, "x_test": pixels[:10], "y_test": labels[:10]}
    np.savez(tmp_path / "digits16.npz", **arrays)
    monkeypatch.chdir(tmp_path)
    args = ["compare", "--methods", "onehot,label_smoothing", "--seeds", "0-1", "--no-progress"]
    args += ["--output-dir", str(tmp_path / "runs"), "data.name=files", "data.files.format=npz"]
    code = main([*args, "data.files.path=digits16.npz", "model.hidden=[8]", "train.epochs=1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "float pixel values must lie in [0, 1]" in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_without_a_config_relative_files_are_read_from_the_working_folder(texts, capsys):
    code = main(compare(texts))
    assert code == 0, capsys.readouterr().err
    assert len(list((texts / "runs" / "texts").glob("*/seed*/summary.json"))) == 4
