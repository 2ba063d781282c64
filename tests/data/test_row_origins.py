"""Each split of your files knows, row by row, the file it came from and the row's number there
(Split.origins, issue 99): through a dev split carved from train, max_train_pairs, noisy labels,
several files to a split, blank lines and cells over several lines; an image folder's rows are its
image files; a saved data set's rows are numbered in its split."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from labelemb.data import DataRequest, Split, load
from labelemb.data.files.options import FilesOptions
from labelemb.data.label_noise import add_label_noise
from labelemb.data.label_noise.options import NoiseConfig
from labelemb.data.origins import RowOrigins
from labelemb.data.text.corpus import words

CLASSES = ("food", "music", "sports")


def spelt(number: int) -> str:
    """A text that says ``number`` in words every split's vocabulary holds (``d3 d1 d4``)."""
    return " ".join(f"d{digit}" for digit in str(number))


def write_table(path, numbers: list[int], generator: np.random.Generator, oddities: bool = False) -> None:
    """A CSV of (text, label): each text spells its number, each label drawn. With ``oddities``,
    a blank line and a text over two lines, which are one row each (or none) as a reader counts."""
    lines = ["text,label"]
    for k, number in enumerate(numbers):
        text = spelt(number)
        if oddities and k == 3:
            lines.append("")  # a blank line is no row
        if oddities and k == 5:
            text = text.replace(" ", "\n", 1)  # a quoted cell over two lines is one row
        lines.append(f'"{text}",{CLASSES[int(generator.integers(3))]}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def file_rows(path) -> list[dict[str, str]]:
    """A CSV file's data rows as the standard library reads them (blank lines are none)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def request(tmp_path, max_train_pairs: int | None = None, **files) -> DataRequest:
    sections = {"files": FilesOptions(**files)}
    return DataRequest(dir=str(tmp_path), sections=sections, progress=False, max_train_pairs=max_train_pairs)


def check_rows_are_the_files(dataset, split: str) -> list[tuple[str, int]]:
    """Every row of ``split`` is the row its origin names: the same text and the same label.
    Returns each row's (file, row number)."""
    held = getattr(dataset, split)
    origins = held.origins
    assert isinstance(origins, RowOrigins) and len(origins) == len(held)
    read: dict[str, list[dict[str, str]]] = {}
    found = []
    for i in range(len(held)):
        path, row = origins.file(i), origins.row(i)
        record = read.setdefault(path, file_rows(path))[row - 1]
        text = dataset.vocabulary.decode(held.inputs[i, : int(held.lengths[i])].tolist())
        assert text == words(record["text"]), (split, i, path, row)
        assert dataset.class_names[int(held.labels[i])] == record["label"], (split, i, path, row)
        found.append((path, row))
    return found


def test_a_carved_dev_split_and_a_cut_train_keep_each_rows_number_in_its_file(tmp_path):
    generator = np.random.default_rng(3)
    write_table(tmp_path / "a.csv", list(range(40)), generator, oddities=True)
    write_table(tmp_path / "b.csv", list(range(100, 130)), generator)
    write_table(tmp_path / "test.csv", list(range(200, 212)), generator)
    files = {"format": "csv", "train": ["a.csv", "b.csv"], "test": "test.csv", "dev_fraction": 0.2}
    dataset = load("files", request(tmp_path, **files))
    train = check_rows_are_the_files(dataset, "train")
    dev = check_rows_are_the_files(dataset, "dev")
    # Train and dev share the two files' rows between them, each once: 40 of a.csv, 30 of b.csv.
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    assert sorted(train + dev) == [(a, n) for n in range(1, 41)] + [(b, n) for n in range(1, 31)]
    assert dataset.train.origins.files == (a, b) and dataset.train.origins.several_files
    assert {path for path, _ in dev} == {a, b}  # the carve drew from both files
    test = check_rows_are_the_files(dataset, "test")
    assert test == [(str(tmp_path / "test.csv"), n) for n in range(1, 13)]
    assert not dataset.test.origins.several_files

    cut = load("files", request(tmp_path, max_train_pairs=20, **files))
    assert check_rows_are_the_files(cut, "train") == train[:20]
    assert check_rows_are_the_files(cut, "dev") == dev


def test_noisy_labels_keep_the_rows_origins(tmp_path):
    generator = np.random.default_rng(4)
    write_table(tmp_path / "train.csv", list(range(60)), generator)
    write_table(tmp_path / "test.csv", list(range(60, 70)), generator)
    dataset = load("files", request(tmp_path, format="csv", train="train.csv", test="test.csv"))
    noisy = add_label_noise(dataset, NoiseConfig(kind="symmetric", rate=0.5, seed=1), DataRequest())
    assert not torch.equal(noisy.train.labels, dataset.train.labels)
    for split in ("train", "dev", "test"):
        assert getattr(noisy, split).origins is getattr(dataset, split).origins


def test_a_json_lines_file_numbers_its_objects(tmp_path):
    for split, numbers in (("train", range(30)), ("test", range(30, 36))):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for number in numbers:
                handle.write(json.dumps({"text": spelt(number), "label": CLASSES[number % 3]}) + "\n")
    dataset = load("files", request(tmp_path, format="json", train="train.jsonl", test="test.jsonl"))
    for split in ("train", "dev"):
        held = getattr(dataset, split)
        for i in range(len(held)):
            text = dataset.vocabulary.decode(held.inputs[i, : int(held.lengths[i])].tolist())
            # Object n of the file spells n - 1.
            assert text == words(spelt(held.origins.row(i) - 1))
    assert sorted(dataset.train.origins.rows.tolist() + dataset.dev.origins.rows.tolist()) == list(
        range(1, 31)
    )


def test_an_image_folders_rows_are_its_image_files(tmp_path):
    from PIL import Image

    generator = np.random.default_rng(5)
    for split, count in (("train", 12), ("test", 4)):
        for name in ("dark", "light"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = generator.integers(0, 120, (6, 7)) + (120 if name == "light" else 0)
                Image.fromarray(pixels.astype(np.uint8), "L").save(tmp_path / split / name / f"{i}.png")
    files = {"format": "imagefolder", "train": "train", "test": "test", "cache_dir": str(tmp_path / "cache")}
    dataset = load("files", request(tmp_path, **files))
    seen = []
    for split in ("train", "dev"):
        held = getattr(dataset, split)
        assert held.origins.rows is None and not held.origins.several_files
        for i in range(len(held)):
            path = held.origins.file(i)
            assert path.startswith(str(tmp_path / "train")) and path.endswith(".png")
            assert dataset.class_names[int(held.labels[i])] == path.split("/")[-2]
            assert torch.equal(held.inputs[i, 0], torch.from_numpy(np.array(Image.open(path))))
            assert held.origins.place(i) == path
            seen.append(path)
    assert len(set(seen)) == 24
    # The image cache is read, not decoded again, and the rows keep their files.
    again = load("files", request(tmp_path, **files))
    assert again.train.origins.files == dataset.train.origins.files


def test_arrays_and_a_saved_data_set_are_numbered_in_their_own_splits(tmp_path):
    import datasets

    generator = np.random.default_rng(6)
    arrays = {
        "x_train": generator.integers(0, 256, (20, 4, 4), dtype=np.uint8),
        "y_train": np.arange(20) % 2,
        "x_test": generator.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "y_test": np.arange(6) % 2,
    }
    np.savez(tmp_path / "set.npz", **arrays)
    cache = str(tmp_path / "cache")
    dataset = load("files", request(tmp_path, format="npz", path="set.npz", cache_dir=cache))
    assert dataset.dev.origins.files == (f"{tmp_path / 'set.npz'} [x_train]",)
    for i in range(len(dataset.dev)):
        row = dataset.dev.origins.row(i)
        assert torch.equal(dataset.dev.inputs[i, 0], torch.from_numpy(arrays["x_train"][row - 1]))

    table = {"text": [spelt(n) for n in range(30)], "label": [CLASSES[n % 3] for n in range(30)]}
    saved = {"train": datasets.Dataset.from_dict(table), "test": datasets.Dataset.from_dict(table)}
    datasets.DatasetDict(saved).save_to_disk(str(tmp_path / "saved"))
    dataset = load("files", request(tmp_path, format="disk", path="saved"))
    assert dataset.dev.origins.files == (f"{tmp_path / 'saved'} [train]",)
    held = dataset.dev
    for i in range(len(held)):
        text = dataset.vocabulary.decode(held.inputs[i, : int(held.lengths[i])].tolist())
        assert text == words(spelt(held.origins.row(i) - 1))


def test_a_split_carries_its_origins_when_moved_or_cut_and_refuses_a_wrong_count():
    origins = RowOrigins.counted(["a.csv", "b.csv"], [0, 3], 5)
    assert [origins.place(i) for i in range(5)] == [
        "a.csv, row 1",
        "a.csv, row 2",
        "a.csv, row 3",
        "b.csv, row 1",
        "b.csv, row 2",
    ]
    split = Split(torch.zeros(5, 2), torch.arange(5), origins=origins)
    assert split.to(torch.device("cpu")).origins is origins
    first = split.first(4)
    assert [first.origins.place(i) for i in range(4)][-1] == "b.csv, row 1"
    assert replace(split, labels=torch.zeros(5, dtype=torch.int64)).origins is origins
    assert Split(torch.zeros(5, 2), torch.arange(5)).origins is None
    with pytest.raises(ValueError, match="2 row origins for 5 rows"):
        Split(torch.zeros(5, 2), torch.arange(5), origins=origins.take(np.array([0, 4])))
