"""Your own files as data (data.name: files): every format on small files the tests write, the
label and split rules, and each kind of bad input as one line naming the file and row."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from labelemb.config import ConfigError, build_config, load_config
from labelemb.data import DataError, DataRequest, load
from labelemb.data.files.loader import stratified_split
from labelemb.data.files.options import FilesOptions, files_yields
from labelemb.training import train

TEXTS = {
    "sports": ["the team won the match", "a great goal in the final", "the coach praised the players"],
    "music": ["the band played a new song", "a quiet piano album", "the singer toured europe"],
    "food": ["bake the bread slowly", "a spicy soup with rice", "fresh pasta and tomato sauce"],
}


def rows(repeat: int = 4) -> list[tuple[str, str]]:
    return [(f"{text} {i}", label) for i in range(repeat) for label, texts in TEXTS.items() for text in texts]


def write_csv(path, table: list[tuple[str, str]], header: str = "text,label", compress: bool = False) -> None:
    lines = [header] + [f'"{text}",{label}' for text, label in table]
    content = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(content)
    else:
        path.write_text(content, encoding="utf-8")


def request(tmp_path, **files) -> DataRequest:
    return DataRequest(dir=str(tmp_path), sections={"files": FilesOptions(**files)}, progress=False)


@pytest.fixture
def csv_data(tmp_path):
    write_csv(tmp_path / "train.csv.gz", rows(4), compress=True)
    write_csv(tmp_path / "test.csv", rows(1))
    return tmp_path


def test_csv_with_string_labels_sorted_classes_and_a_carved_dev_split(csv_data):
    dataset = load("files", request(csv_data, format="csv", train="train.csv.gz", test="test.csv"))
    assert dataset.yields == "texts"
    assert dataset.class_names == ["food", "music", "sports"]
    # 36 training rows, 12 per class: 10 % of each class (1.2 -> 1) is dev, seeded and stratified.
    assert len(dataset.dev) == 3 and len(dataset.train) == 33
    assert sorted(dataset.dev.labels.tolist()) == [0, 1, 2]
    assert dataset.details["dev_carved_from_train"] == {"fraction": 0.1, "seed": 0}
    assert dataset.details["examples"] == {"train": 33, "dev": 3, "test": 9}
    again = load("files", request(csv_data, format="csv", train="train.csv.gz", test="test.csv"))
    assert torch.equal(again.dev.inputs, dataset.dev.inputs)


def test_stratified_split_takes_the_fraction_of_every_class_and_keeps_singletons_in_train():
    labels = np.array([0] * 10 + [1] * 20 + [2])
    train_index, dev_index = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[dev_index], minlength=3).tolist() == [2, 4, 0]
    assert sorted(np.concatenate([train_index, dev_index]).tolist()) == list(range(31))
    assert np.array_equal(dev_index, stratified_split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(dev_index, stratified_split(labels, 0.2, seed=4)[1])


def test_json_lines_with_integer_labels_and_named_classes(tmp_path):
    names = list(TEXTS)
    for split, repeat in (("train", 3), ("dev", 1), ("test", 1)):
        with open(tmp_path / f"{split}.jsonl", "w") as handle:
            for text, label in rows(repeat):
                handle.write(json.dumps({"body": text, "y": names.index(label)}) + "\n")
    dataset = load(
        "files",
        request(
            tmp_path, format="json", train="train.jsonl", dev="dev.jsonl", test="test.jsonl",
            input_column="body", label_column="y", class_names=names,
        ),
    )  # fmt: skip
    assert dataset.class_names == names
    assert len(dataset.train) == 27 and len(dataset.dev) == 9
    assert "dev_carved_from_train" not in dataset.details
    assert dataset.test.labels.tolist() == [names.index(label) for _, label in rows(1)]


def test_parquet(tmp_path):
    import pandas

    for split, repeat in (("train", 3), ("test", 1)):
        frame = pandas.DataFrame(rows(repeat), columns=["text", "label"])
        frame.to_parquet(tmp_path / f"{split}.parquet")
    dataset = load("files", request(tmp_path, format="parquet", train="train.parquet", test="test.parquet"))
    assert dataset.num_classes == 3 and len(dataset.test) == 9


def test_save_to_disk_folder_and_a_resume_on_other_content_is_refused(tmp_path):
    import datasets

    def save(table):
        frame = {"text": [t for t, _ in table], "label": [label for _, label in table]}
        splits = {"train": datasets.Dataset.from_dict(frame), "test": datasets.Dataset.from_dict(frame)}
        datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "saved"))

    save(rows(4))
    raw = {
        "experiment": "disk",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "files", "dir": str(tmp_path), "files": {"format": "disk", "path": "saved"}},
        "model": {"name": "bag_of_words"},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 8, "max_steps": 2, "progress": False},
    }
    summary = train(build_config(raw))
    assert summary["data"]["format"] == "disk"
    folder = tmp_path / "runs" / "disk" / "onehot" / "seed0"
    (folder / "summary.json").unlink()  # as if killed before the end
    save(list(reversed(rows(5))))
    with pytest.raises(Exception, match="different config: it trained on data whose content differs"):
        train(build_config(raw))


def test_npz_arrays_are_images(tmp_path):
    generator = np.random.default_rng(0)
    arrays = {
        "x_train": generator.integers(0, 256, (20, 8, 8), dtype=np.uint8),
        "y_train": np.arange(20) % 2,
        "x_test": generator.integers(0, 256, (6, 8, 8), dtype=np.uint8),
        "y_test": np.arange(6) % 2,
    }
    np.savez(tmp_path / "digits.npz", **arrays)
    files = {"format": "npz", "path": "digits.npz", "cache_dir": str(tmp_path / "cache")}
    assert files_yields({"files": FilesOptions(**files)}) == "images"
    dataset = load("files", request(tmp_path, **files))
    assert dataset.input_shape == (1, 8, 8) and dataset.train.inputs.dtype == torch.uint8
    assert len(dataset.dev) == 2 and len(dataset.train) == 18
    assert torch.equal(dataset.test.inputs[:, 0], torch.from_numpy(arrays["x_test"]))


def test_parallel_files_with_any_names_train_the_seq2seq_task(tmp_path):
    pairs = [
        ("the cat", "die katze"),
        ("a dog", "ein hund"),
        ("the house", "das haus"),
        ("good tea", "guter tee"),
    ]
    for split, chosen in (("train", pairs * 5), ("dev", pairs[:2]), ("test", [("the dog", "der hund")])):
        (tmp_path / f"{split}.en").write_text("\n".join(s for s, _ in chosen) + "\n")
        with gzip.open(tmp_path / f"{split}.de.gz", "wt") as handle:
            handle.write("\n".join(t for _, t in chosen) + "\n")
    files = {f"{s}": [f"{s}.en", f"{s}.de.gz"] for s in ("train", "dev", "test")}
    assert files_yields({"files": FilesOptions(format="parallel")}) == "token_pairs"
    dataset = load("files", request(tmp_path, format="parallel", **files))
    assert dataset.yields == "token_pairs" and len(dataset.train) == 20
    assert dataset.target_vocabulary.index["katze"] > 0


def test_files_are_found_beside_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    write_csv(folder / "train.csv", rows(3))
    write_csv(folder / "test.csv", rows(1))
    (folder / "run.yaml").write_text(
        "data:\n  name: files\n  files: {format: csv, train: train.csv, test: test.csv}\n"
        "model: {name: bag_of_words}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABELEMB_DATA", raising=False)
    from labelemb.assembly.build import load_run_data

    dataset = load_run_data(load_config(folder / "run.yaml"))
    assert len(dataset.test) == 9


# ------------------------------------------------------------------------------- bad input


def test_a_missing_file_names_every_place_looked(tmp_path):
    with pytest.raises(DataError, match=r"train file nope\.csv not found \(looked for .*nope\.csv"):
        load("files", request(tmp_path, format="csv", train="nope.csv", test="nope.csv"))


def test_a_missing_column_names_the_columns_there_are(csv_data):
    with pytest.raises(DataError, match=r"train\.csv\.gz has no column 'body' \(its columns: text, label\)"):
        load(
            "files",
            request(csv_data, format="csv", train="train.csv.gz", test="test.csv", input_column="body"),
        )


def test_a_ragged_csv_row_names_the_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"a b",x\n"c d",y,extra\n"e f",x\n')
    write_csv(tmp_path / "test.csv", [("a", "x")])
    with pytest.raises(DataError, match=r"train\.csv cannot be read as csv: .*line 3"):
        load("files", request(tmp_path, format="csv", train="train.csv", test="test.csv"))


def test_an_empty_text_names_the_line(tmp_path):
    write_csv(tmp_path / "train.csv", [("a b", "x"), ("c d", "y"), ("  ", "x")])
    write_csv(tmp_path / "test.csv", [("a", "x")])
    with pytest.raises(DataError, match=r"train\.csv, line 4: the text is empty"):
        load("files", request(tmp_path, format="csv", train="train.csv", test="test.csv", dev_fraction=0))


def test_a_missing_label_names_the_line(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"a b",x\n"c d",\n"e f",y\n')
    write_csv(tmp_path / "test.csv", [("a", "x")])
    with pytest.raises(DataError, match=r"train\.csv, line 3: the label is missing"):
        load("files", request(tmp_path, format="csv", train="train.csv", test="test.csv"))


def test_a_test_label_that_train_lacks_is_named_with_its_file_and_line(csv_data):
    write_csv(csv_data / "test.csv", [("a", "food"), ("b", "poetry")])
    with pytest.raises(
        DataError, match=r"test\.csv, line 3: label 'poetry' is not a class \(train does not have it"
    ):
        load("files", request(csv_data, format="csv", train="train.csv.gz", test="test.csv"))


def test_a_single_class_is_refused(tmp_path):
    write_csv(tmp_path / "train.csv", [("a b", "x"), ("c d", "x")])
    write_csv(tmp_path / "test.csv", [("a", "x")])
    with pytest.raises(DataError, match="a single class \\('x'\\)"):
        load("files", request(tmp_path, format="csv", train="train.csv", test="test.csv"))


def test_a_folder_in_place_of_a_table_file(tmp_path):
    (tmp_path / "train.csv").mkdir()
    write_csv(tmp_path / "test.csv", [("a", "x")])
    with pytest.raises(DataError, match=r"train\.csv is a folder, not a csv file"):
        load("files", request(tmp_path, format="csv", train="train.csv", test="test.csv"))


def test_an_empty_class_folder_is_named(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "train" / name).mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "train" / "cat" / "1.png")
    with pytest.raises(DataError, match=r"class folder .*train/dog holds no images"):
        load("files", request(tmp_path, format="imagefolder", train="train", test="train"))


def test_a_hub_name_without_a_network_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="hub data set 'no-such/set' could not be loaded .*save_to_disk"):
        load("files", request(tmp_path, format="hub", path="no-such/set", cache_dir=str(tmp_path / "c")))


def test_config_checks_before_any_data_is_read():
    with pytest.raises(ConfigError, match="needs data.files.train and data.files.test"):
        build_config({"data": {"name": "files", "files": {"format": "json", "train": "a.jsonl"}}})
    with pytest.raises(ConfigError, match="data.files .* describes your own files: set data.name: files"):
        build_config({"data": {"name": "mnist", "files": {"train": "a.csv"}}})
    with pytest.raises(ConfigError, match="data.files.format disk needs data.files.path"):
        build_config(
            {"data": {"name": "files", "files": {"format": "disk"}}, "model": {"name": "bag_of_words"}}
        )
    with pytest.raises(ConfigError, match="image_size is \\[height, width\\]"):
        build_config({"data": {"name": "files", "files": {"image_size": [28]}}})


def test_an_image_folder_of_mixed_modes_trains(tmp_path, caplog):
    from PIL import Image

    generator = np.random.default_rng(1)
    modes = {"L": (), "RGB": (3,), "RGBA": (4,)}
    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                mode = list(modes)[i % 3]
                pixels = generator.integers(0, 256, (10, 12, *modes[mode]), dtype=np.uint8)
                Image.fromarray(pixels, mode).save(folder / f"{i}.png")
        (tmp_path / split / "cat" / "notes.txt").write_text("not an image")
    files = {"format": "imagefolder", "train": "train", "test": "test", "channels": 3, "image_size": [8, 8]}
    files["cache_dir"] = str(tmp_path / "cache")
    raw = {
        "experiment": "folder",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "files", "dir": str(tmp_path), "files": files},
        "model": {"name": "mlp", "hidden": [8]},
        "method": {"name": "label_embedding"},
        "train": {"epochs": 2, "batch_size": 4, "progress": False},
    }
    with caplog.at_level("WARNING", logger="labelemb.data.files.loader"):
        summary = train(build_config(raw))
    # A file that is not an image is left out, by name.
    assert "file(s) that are not images left out, e.g." in caplog.text and "notes.txt" in caplog.text
    assert summary["class_names"] == ["cat", "dog"]
    assert summary["data"]["image_shape"] == [3, 8, 8]
    assert summary["data"]["examples"] == {"train": 10, "dev": 2, "test": 4}


def test_uint8_images_from_files_give_the_numbers_of_the_same_images_in_memory(tmp_path):
    """The files path (a uint8 cache, made float a batch at a time) trains exactly as float images
    divided by 255 up front, as the named image sets hold them."""
    from labelemb.data import Dataset, Split

    generator = np.random.default_rng(2)
    arrays = {
        f"{axis}_{split}": value
        for split, n in (("train", 40), ("dev", 10), ("test", 10))
        for axis, value in (
            ("x", generator.integers(0, 256, (n, 6, 6), dtype=np.uint8)),
            ("y", generator.integers(0, 3, n)),
        )
    }
    np.savez(tmp_path / "set.npz", **arrays)

    def in_memory(split: str) -> Split:
        images = torch.from_numpy(arrays[f"x_{split}"][:, None].copy()).to(torch.float32).div_(255.0)
        return Split(images, torch.from_numpy(arrays[f"y_{split}"]).long())

    memory = Dataset("set", in_memory("train"), in_memory("dev"), in_memory("test"), ["0", "1", "2"])
    files = {"format": "npz", "path": "set.npz", "cache_dir": str(tmp_path / "cache")}
    summaries = []
    for experiment, dataset in (("files", None), ("memory", memory)):
        raw = {
            "experiment": experiment,
            "output_dir": str(tmp_path / "runs"),
            "data": {"name": "files", "dir": str(tmp_path), "files": files},
            "model": {"name": "mlp", "hidden": [16]},
            "method": {"name": "label_embedding"},
            "train": {"epochs": 3, "batch_size": 8, "progress": False},
        }
        summaries.append(train(build_config(raw), dataset=dataset))
    records = [
        [
            json.loads(line)
            for line in (tmp_path / "runs" / e / "label_embedding" / "seed0" / "metrics.jsonl").open()
        ]
        for e in ("files", "memory")
    ]
    keys = ("dev_error", "test_error", "train_loss", "train_emb")
    assert [[r.get(k) for k in keys] for r in records[0]] == [[r.get(k) for k in keys] for r in records[1]]
    assert summaries[0]["selected_test_error"] == summaries[1]["selected_test_error"]


def test_selection_metric_must_be_one_the_task_selects_by():
    texts = {"name": "files", "files": {"train": "a.csv", "test": "b.csv"}}
    config = build_config(
        {"data": texts, "model": {"name": "bag_of_words"}, "selection_metric": "dev_macro_f1"}
    )
    assert config.selection_metric == "dev_macro_f1"
    with pytest.raises(
        ConfigError, match="cannot select the checks of an image data set: use one of dev_error"
    ):
        build_config({"selection_metric": "dev_macro_f1"})
    with pytest.raises(ConfigError, match="use one of dev_error, dev_macro_f1, or null"):
        build_config({"data": texts, "model": {"name": "bag_of_words"}, "selection_metric": "dev_f1"})


def test_a_test_image_folder_without_one_class_keeps_trains_class_ids(tmp_path):
    """Each folder's ClassLabel numbers its own sub-folders: a test folder lacking "dog" must not
    give "fox" dog's id."""
    from PIL import Image

    for split, names in (("train", ("cat", "dog", "fox")), ("test", ("cat", "fox"))):
        for shade, name in enumerate(names):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("L", (4, 4), color=40 * shade + i).save(tmp_path / split / name / f"{i}.png")
    files = {"format": "imagefolder", "train": "train", "test": "test", "cache_dir": str(tmp_path / "c")}
    dataset = load("files", request(tmp_path, **files, dev_fraction=0))
    assert dataset.class_names == ["cat", "dog", "fox"]
    assert dataset.test.labels.tolist() == [0, 0, 0, 2, 2, 2]
