"""A table that carries each row's true label beside the one trained on (data.files.clean_label_column):
the run trains on the noisy column, judges test on the true one, and records the noise as a noise:
section does; the mistakes a user can make with it are one line each."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from labelemb.config import ConfigError, build_config
from labelemb.data import DataError, DataRequest, load
from labelemb.data.files.options import FilesOptions
from labelemb.data.label_noise import NoiseConfig, NoiseError, add_label_noise
from labelemb.options import OptionsError
from labelemb.training import train

CLASSES = ("sports", "music", "food")
WORDS = {"sports": "goal match team", "music": "song band piano", "food": "bread soup rice"}


def table(count: int, wrong_every: int | None) -> list[tuple[str, str, str]]:
    """(text, label, true label) rows; every ``wrong_every``-th row's label names the next class."""
    rows = []
    for i in range(count):
        true = CLASSES[i % 3]
        noisy = CLASSES[(i + 1) % 3] if wrong_every and i % wrong_every == 0 else true
        rows.append((f"{WORDS[true]} {i}", noisy, true))
    return rows


def write(path, rows, columns=("text", "label", "clean_label")) -> None:
    lines = [",".join(columns)] + [",".join(row[: len(columns)]) for row in rows]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def request(folder, **files) -> DataRequest:
    options = {
        "format": "csv",
        "train": "train.csv.gz",
        "test": "test.csv.gz",
        "clean_label_column": "clean_label",
    }
    return DataRequest(
        dir=str(folder), sections={"files": FilesOptions(**{**options, **files})}, progress=False
    )


def wrong_labels(dataset) -> int:
    """How many of train's and dev's labels differ from their true ones."""
    noise = dataset.noise
    return sum(int(noise.flipped(split, getattr(dataset, split).labels).sum()) for split in ("train", "dev"))


@pytest.fixture
def noisy_table(tmp_path):
    write(tmp_path / "train.csv.gz", table(300, wrong_every=5))  # rows 0, 5, 10, ...: 60 of 300 wrong
    # The test file's label column is wrong on every row: the true column must be the one judged on.
    write(
        tmp_path / "test.csv.gz",
        [(text, CLASSES[(CLASSES.index(t) + 1) % 3], t) for text, _, t in table(30, None)],
    )
    return tmp_path


def test_train_keeps_the_noisy_labels_test_takes_the_true_ones_and_the_noise_is_recorded(noisy_table):
    dataset = load("files", request(noisy_table, dev_fraction=0.2))
    noise = dataset.noise
    assert set(noise.clean) == {"train", "dev"}
    # The carve is stratified by the trained-on labels; every row keeps its own pair of labels.
    rows = table(300, wrong_every=5)
    wrong_in_file = sum(noisy != true for _, noisy, true in rows)
    wrong = wrong_labels(dataset)
    assert wrong == wrong_in_file == 60
    assert len(dataset.train) + len(dataset.dev) == 300
    names = dataset.class_names
    # The realised matrix is the rows' own: each true class's share of each trained-on label.
    realised = noise.realised
    train_clean = noise.clean["train"].numpy()
    train_noisy = dataset.train.labels.numpy()
    for true in range(3):
        members = train_noisy[train_clean == true]
        expected = np.bincount(members, minlength=3) / len(members)
        assert np.allclose(realised[true], expected)
    # Only a true class's next class is ever its wrong label (the file's pattern).
    for true in range(3):
        nxt = names.index(CLASSES[(CLASSES.index(names[true]) + 1) % 3])
        assert set(np.flatnonzero(realised[true])) <= {true, nxt}
    assert dataset.test.labels.tolist() == [names.index(t) for _, _, t in table(30, None)]
    assert noise.description["kind"] == "carried"
    assert noise.description["realised_rate"]["train"] + noise.description["realised_rate"]["dev"] > 0
    assert dataset.details["noise"] is noise.description


def test_a_test_file_without_the_column_is_judged_on_its_labels(tmp_path):
    write(tmp_path / "train.csv.gz", table(60, wrong_every=4))
    write(tmp_path / "test.csv.gz", table(9, None), columns=("text", "label"))
    dataset = load("files", request(tmp_path))
    assert dataset.test.labels.tolist() == [dataset.class_names.index(t) for _, t, _ in table(9, None)]


def test_max_train_pairs_keeps_each_row_with_its_true_label(noisy_table):
    full = load("files", request(noisy_table, dev_fraction=0.2))
    cut = load(
        "files", DataRequest(**{**request(noisy_table, dev_fraction=0.2).__dict__, "max_train_pairs": 50})
    )
    assert torch.equal(cut.noise.clean["train"], full.noise.clean["train"][:50])
    assert torch.equal(cut.train.labels, full.train.labels[:50])


@pytest.mark.parametrize(
    "rows, message",
    [
        # A true class the trained-on column never names, and the reverse.
        (
            [("a 1", "sports", "music"), ("b 2", "sports", "cooking"), ("c 3", "music", "music")] * 4,
            "'cooking', which the label column does not",
        ),
        (
            [("a 1", "sports", "sports"), ("b 2", "food", "music"), ("c 3", "music", "music")] * 4,
            "the label column holds 'food', which clean_label does not",
        ),
        # A row without its true label.
        (
            [("a 1", "sports", "sports"), ("b 2", "music", ""), ("c 3", "music", "music")] * 4,
            "the label is missing",
        ),
    ],
)
def test_a_true_label_column_that_does_not_match_the_labels_is_one_line(tmp_path, rows, message):
    write(tmp_path / "train.csv.gz", rows)
    write(tmp_path / "test.csv.gz", rows[:3])
    with pytest.raises(DataError, match=message) as caught:
        load("files", request(tmp_path))
    assert "\n" not in str(caught.value) and "train.csv.gz" in str(caught.value)


def test_a_training_file_without_the_column_is_refused_naming_it(tmp_path):
    write(tmp_path / "train.csv.gz", table(30, None), columns=("text", "label"))
    write(tmp_path / "test.csv.gz", table(9, None))
    with pytest.raises(
        DataError, match=r"train.csv.gz has no column 'clean_label' \(data.files.clean_label_column\)"
    ):
        load("files", request(tmp_path))


def test_the_column_is_refused_where_it_cannot_be_read_or_is_the_label_column():
    with pytest.raises(OptionsError, match="format npz has none"):
        FilesOptions(format="npz", path="digits.npz", clean_label_column="clean").check()
    with pytest.raises(OptionsError, match="the label column itself"):
        FilesOptions(train="a.csv", test="b.csv", clean_label_column="label").check()


def test_a_noise_section_on_labels_that_carry_their_noise_is_refused(noisy_table):
    from labelemb.data.label_noise import add_label_noise

    dataset = load("files", request(noisy_table))
    with pytest.raises(NoiseError, match="carries its own noisy labels"):
        add_label_noise(dataset, NoiseConfig(kind="symmetric", rate=0.2), request(noisy_table))


def run_config(folder, tmp_path, **extra):
    files = request(folder).sections["files"].model_dump(exclude_defaults=True)
    return build_config(
        {
            "experiment": "carried",
            "output_dir": str(tmp_path / "runs"),
            "data": {"name": "files", "dir": str(folder), "files": files},
            "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 64},
            "method": {"name": "onehot"},
            "train": {"epochs": 1, "batch_size": 32, "device": "cpu"},
            **extra,
        }
    )


def test_a_run_on_carried_noise_records_and_measures_it_as_a_noise_section_would(noisy_table, tmp_path):
    summary = train(run_config(noisy_table, tmp_path))
    assert summary["data"]["noise"]["kind"] == "carried"
    assert summary["data"]["noise"]["source"] == "column clean_label"
    assert next((tmp_path / "runs").rglob("label_noise.safetensors")).is_file()


def test_a_noise_section_beside_the_column_is_refused_before_anything_is_read(noisy_table, tmp_path):
    with pytest.raises(ConfigError, match="clean_label_column .'clean_label'. says are noisy already"):
        run_config(noisy_table, tmp_path, noise={"kind": "symmetric", "rate": 0.2})
    assert not (tmp_path / "runs").exists()


def test_noisyag_news_loads_with_the_crowds_labels_and_its_measured_rate(noisy_labels_dir):
    from labelemb.config import load_config

    config = load_config("configs/noisyag-news.yaml", [f"data.dir={noisy_labels_dir.parent}"])
    dataset = load("files", DataRequest(dir=config.data.dir, sections=config.data_sections(), progress=False))
    wrong = wrong_labels(dataset)
    # The data's README: 19.75 % of the 10,000 crowd labels differ from the true ones.
    assert (len(dataset.train), len(dataset.dev), wrong) == (9000, 1000, 1975)
    assert torch.bincount(dataset.test.labels).tolist() == [1900] * 4
    assert dataset.class_names == ["World", "Sports", "Business", "Sci/Tech"]


def test_a_labels_file_fits_a_training_table_whose_dev_was_carved_from_it(tmp_path):
    # Issue 99: a labels file gives one label per row of the training file; with dev carved from
    # that file, train holds fewer rows, and each row's label must still be its own row's.
    rows = table(120, wrong_every=None)
    write(tmp_path / "train.csv.gz", rows, columns=("text", "label"))
    write(tmp_path / "test.csv.gz", table(30, wrong_every=None), columns=("text", "label"))
    dataset = load("files", request(tmp_path, clean_label_column=None, dev_fraction=0.2))
    given = np.array([dataset.class_names.index(label) for _, label, _ in rows])
    noisy = np.where(np.arange(len(rows)) % 4 == 0, (given + 1) % 3, given)  # every fourth row wrong
    np.savetxt(tmp_path / "noisy.txt", noisy, fmt="%d")
    noise = NoiseConfig(kind="file", labels=str(tmp_path / "noisy.txt"))
    noisy_data = add_label_noise(dataset, noise, DataRequest())
    for split in ("train", "dev"):
        held = getattr(noisy_data, split)
        numbers = held.origins.rows - 1  # each row's place in the file
        assert 0 < len(held) < len(rows)
        assert held.labels.tolist() == noisy[numbers].tolist(), split
        assert noisy_data.noise.clean[split].tolist() == given[numbers].tolist(), split
