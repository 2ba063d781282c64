"""Texts with tag sets (data.files.tags_column): every cell form (CSV strings split at spaces, commas
or a separator of one's own; JSON-lines and Parquet lists; a saved data set's ClassLabel ids) as the
same bool (N, K) rows, the tag order, the dev carve, the checks one line each, and the real
debian-debtags corpus (which fails, never skips, when $LABELEMB_DATA lacks it)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from labelemb.data import DataError, DataRequest, Dataset, Split, check_labels, load
from labelemb.data.files.options import FilesOptions, files_yields
from labelemb.data.files.tag_sets import random_split
from labelemb.data.label_noise import NoiseConfig, NoiseError, add_label_noise
from labelemb.data.text.classes import EncoderVocabulary, TextClassSplit
from labelemb.data.text.tagged import TaggedTextDataset, tagged_text_dataset
from labelemb.options import OptionsError, read_options

TAGGED = [
    ("the team won the match", ["sports"]),
    ("a song about football", ["music", "sports"]),
    ("a quiet piano album", ["music"]),
    ("bake bread while listening to jazz", ["food", "music"]),
    ("a spicy soup with rice", ["food"]),
    ("the chef and the coach cooked", ["sports", "food"]),
]
NAMES = ["food", "music", "sports"]
DEBTAGS = {"train.csv.gz": 23_469, "validation.csv.gz": 2_796, "test.csv.gz": 3_127}


def rows(repeat: int = 3) -> list[tuple[str, list]]:
    return [(f"{text} {i}", tags) for i in range(repeat) for text, tags in TAGGED]


def hot(table: list[tuple[str, list]], names: list[str] = NAMES) -> torch.Tensor:
    return torch.tensor([[name in tags for name in names] for _, tags in table])


def write(path: Path, table: list[tuple[str, object]], separator: str | None = " ") -> Path:
    """A CSV (tags joined by ``separator``; a string cell as it is), JSON lines or Parquet of lists."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t, "tags": tags}) + "\n" for t, tags in table))
    elif path.suffix == ".parquet":
        import pandas

        pandas.DataFrame(table, columns=["text", "tags"]).to_parquet(path)
    else:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "tags"])
            writer.writerows(
                (t, tags if isinstance(tags, str) else separator.join(tags)) for t, tags in table
            )
    return path


def load_tags(
    folder: Path, train: list, test: list, ending: str = "csv", separator: str | None = " ", **files
):
    """The data set of ``train`` and ``test`` written as ``ending`` files, read with ``files``."""
    fmt = {"csv": "csv", "jsonl": "json", "parquet": "parquet"}[ending]
    write(folder / f"train.{ending}", train, separator)
    write(folder / f"test.{ending}", test, separator)
    if "dev" in files:
        write(folder / f"dev.{ending}", files.pop("dev"), separator)
        files["dev"] = f"dev.{ending}"
    files = {"format": fmt, "tags_column": "tags", "cache_dir": str(folder / "cache"), **files}
    max_train_pairs = files.pop("max_train_pairs", None)
    options = FilesOptions(train=f"train.{ending}", test=f"test.{ending}", **files)
    request = DataRequest(
        dir=str(folder), sections={"files": options}, progress=False, max_train_pairs=max_train_pairs
    )
    return load("files", request)


# ------------------------------------------------------------------------------------ the tag sets


def test_a_csv_of_space_separated_tags_is_bool_tag_sets_with_the_tags_sorted(tmp_path):
    dataset = load_tags(tmp_path, rows(3), rows(1), dev=rows(1)[:4])
    assert isinstance(dataset, TaggedTextDataset) and dataset.yields == "tagged texts"
    assert dataset.class_names == NAMES and dataset.num_classes == 3 and dataset.multi_label
    for split, table in (("train", rows(3)), ("dev", rows(1)[:4]), ("test", rows(1))):
        part = getattr(dataset, split)
        assert isinstance(part, TextClassSplit) and part.multi_label
        assert part.labels.dtype == torch.bool and part.labels.shape == (len(table), 3)
        assert torch.equal(part.labels, hot(table))
        assert part.lengths.shape == (len(table),) and part.inputs.dtype == torch.int64
    # "a song about football": music and sports, not food.
    assert dataset.train.labels[1].tolist() == [False, True, True]
    assert dataset.details["examples"] == {"train": 18, "dev": 4, "test": 6}
    assert dataset.details["tag_sets"]["train"] == {"rows": 18, "mean_tags": 1.5, "tags_present": 3}
    assert dataset.tag_counts()["dev"] == {"rows": 4, "mean_tags": 1.5, "tags_present": 3}
    assert dataset.vocabulary.index["piano"] > 1


@pytest.mark.parametrize(
    "ending, separator, given",
    [
        ("csv", ",", None),
        ("csv", " ,  ", None),  # any run of spaces and commas
        ("csv", "|", "|"),
        ("csv", " ; ", " ; "),  # the separator stripped of its spaces, each tag of its own
        ("jsonl", None, None),
        ("parquet", None, None),
    ],
    ids=["csv-commas", "csv-commas-and-spaces", "csv-pipe", "csv-semicolon-spaced", "jsonl", "parquet"],
)
def test_every_cell_form_gives_the_same_tag_sets(tmp_path, ending, separator, given):
    dataset = load_tags(tmp_path, rows(2), rows(1), ending, separator, tag_separator=given, dev_fraction=0)
    assert dataset.class_names == NAMES
    assert torch.equal(dataset.train.labels, hot(rows(2))) and torch.equal(dataset.test.labels, hot(rows(1)))


def test_a_separator_of_ones_own_keeps_the_spaces_inside_a_tag(tmp_path):
    table = [
        ("loud guitars", "hard rock | metal"),
        ("a slow ballad", "pop"),
        ("a ballad with riffs", "pop|hard rock"),
    ]
    dataset = load_tags(tmp_path, table, table[:1], tag_separator="|", dev_fraction=0)
    assert dataset.class_names == ["hard rock", "metal", "pop"]
    assert dataset.train.labels.tolist() == [[True, True, False], [False, False, True], [True, False, True]]


def test_class_names_give_the_tag_order_and_a_tag_twice_in_a_row_counts_once(tmp_path):
    train = [*rows(2), ("sports twice", ["sports", "sports", "music"])]
    order = ["sports", "food", "music"]
    dataset = load_tags(tmp_path, train, rows(1), class_names=order, dev_fraction=0)
    assert dataset.class_names == order
    assert torch.equal(dataset.train.labels, hot(train, order))
    assert dataset.train.labels[-1].tolist() == [True, False, True]


def test_numbers_are_tags_by_their_text_sorted_by_value(tmp_path):
    table = [("a", [10, 2]), ("b", [1]), ("c", [2, 1])]
    dataset = load_tags(tmp_path, table, table, "jsonl", dev_fraction=0)
    assert dataset.class_names == ["1", "2", "10"]
    assert dataset.train.labels.tolist() == [[False, True, True], [True, False, False], [True, True, False]]


def test_a_saved_data_sets_classlabel_ids_are_read_as_their_names(tmp_path):
    import datasets

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "tags": datasets.Sequence(datasets.ClassLabel(names=["z", "y", "x"])),
        }
    )
    table = {"text": ["a", "b", "c"], "tags": [[0, 2], [1], [2, 1]]}
    saved = datasets.Dataset.from_dict(table, features=features)
    datasets.DatasetDict({"train": saved, "test": saved}).save_to_disk(str(tmp_path / "saved"))
    files = FilesOptions(format="disk", path="saved", tags_column="tags", dev_fraction=0)
    dataset = load("files", DataRequest(dir=str(tmp_path), sections={"files": files}, progress=False))
    assert dataset.class_names == ["z", "y", "x"]  # the ClassLabel's own order
    assert dataset.train.labels.tolist() == [[True, False, True], [False, True, False], [False, True, True]]


def test_dev_is_carved_at_random_seeded_and_every_tag_keeps_a_training_row(tmp_path):
    train = [*rows(10), ("a rare one", ["food", "rare"])]
    dataset = load_tags(tmp_path, train, rows(1), dev_fraction=0.25, dev_seed=3)
    assert dataset.details["dev_carved_from_train"] == {"fraction": 0.25, "seed": 3, "stratified": False}
    assert len(dataset.train) + len(dataset.dev) == 61 and 10 <= len(dataset.dev) <= 15
    assert dataset.train.labels.any(dim=0).all()  # "rare" stayed in train
    again = load_tags(tmp_path, train, rows(1), dev_fraction=0.25, dev_seed=3)
    assert torch.equal(again.dev.inputs, dataset.dev.inputs) and torch.equal(
        again.dev.labels, dataset.dev.labels
    )
    other = load_tags(tmp_path, train, rows(1), dev_fraction=0.25, dev_seed=4)
    assert not torch.equal(other.dev.labels, dataset.dev.labels) or not torch.equal(
        other.dev.inputs, dataset.dev.inputs
    )


def test_random_split_gives_back_a_row_holding_a_tags_only_example():
    sets = np.zeros((40, 3), dtype=bool)
    sets[:, 0] = True
    sets[7, 2] = True  # tag 2 on row 7 alone
    for seed in range(20):
        train, dev = random_split(sets, 0.5, seed)
        assert 7 in train and sorted([*train, *dev]) == list(range(40))
        assert np.all(np.diff(dev) > 0) and 16 <= len(dev) <= 20


def test_max_train_pairs_keeps_the_first_rows_and_their_tags(tmp_path):
    dataset = load_tags(tmp_path, rows(3), rows(1), dev_fraction=0, max_train_pairs=5)
    assert len(dataset.train) == 5 and torch.equal(dataset.train.labels, hot(rows(3)[:5]))


def test_a_pretrained_encoders_ids_carry_tag_sets_too(tmp_path):
    try:
        from labelemb.models.sentence_encoder import SentenceEncoder

        folder = SentenceEncoder.tokenizer_folder()
    except ImportError as error:
        pytest.fail(
            f"the text encoder is not installed (pip install 'labelemb[text]'): {error}", pytrace=False
        )
    write(tmp_path / "train.csv", rows(1))
    write(tmp_path / "test.csv", rows(1))
    options = FilesOptions(train="train.csv", test="test.csv", tags_column="tags", dev_fraction=0)
    request = DataRequest(dir=str(tmp_path), sections={"files": options}, progress=False, text_encoder=folder)
    dataset = load("files", request)
    assert isinstance(dataset, TaggedTextDataset) and isinstance(dataset.vocabulary, EncoderVocabulary)
    assert dataset.text_encoder == folder and torch.equal(dataset.train.labels, hot(rows(1)))
    assert dataset.vocabulary.tokens[int(dataset.train.inputs[0, 0])] == "[CLS]"


def test_the_debian_debtags_corpus():
    root = os.environ.get("LABELEMB_DATA")
    assert root, "LABELEMB_DATA is not set: point it at the folder holding debian-debtags/"
    folder = Path(root) / "debian-debtags"
    for name in DEBTAGS:
        assert (folder / name).is_file(), f"debian-debtags is missing {folder / name}"
    files = FilesOptions(
        train="debian-debtags/train.csv.gz",
        dev="debian-debtags/validation.csv.gz",
        test="debian-debtags/test.csv.gz",
        tags_column="tags",
    )
    dataset = load("files", DataRequest(dir=root, sections={"files": files}, progress=False))
    assert [len(dataset.train), len(dataset.dev), len(dataset.test)] == list(DEBTAGS.values())
    assert dataset.num_classes == 233 and dataset.class_names == sorted(dataset.class_names)
    splits = (dataset.train, dataset.dev, dataset.test)
    per_row = torch.cat([split.labels.sum(dim=1) for split in splits]).double()
    assert per_row.min() >= 1 and float(per_row.mean()) == pytest.approx(3.54, abs=0.005)
    assert dataset.details["tag_sets"]["train"]["tags_present"] == 233


# ------------------------------------------------------------------------------------- the checks


SINGLE = [(text, [tags[0]]) for text, tags in rows(1)]
#: Each check: (train rows, test rows, data.files options, what the one line says).
CHECKS = {
    "empty": ([*rows(1), ("empty", "")], rows(1), {}, r"train\.csv, line 8: the tag set is empty \(''"),
    "separators": (
        [*rows(1), ("only commas", " , ,")],
        rows(1),
        {},
        r"train\.csv, line 8: the tag set is empty",
    ),
    "unknown": (
        rows(1),
        [("new", "food poetry")],
        {},
        r"test\.csv, line 2: tag 'poetry' is not a training tag \(test has it, train does not; "
        r"train's tags: food, music, sports\)",
    ),
    "single-label": (
        SINGLE,
        rows(1)[:1],
        {},
        r"every row of the tags column 'tags' holds exactly one tag; this is single-label: name it "
        r"data\.files\.label_column",
    ),
    "twice": (
        rows(1),
        rows(1),
        {"class_names": [*NAMES[:2], "food", "sports"]},
        r"names 'food' twice \(positions 1 and 3\)",
    ),
    "not-named": (
        rows(1),
        rows(1),
        {"class_names": ["food", "music"]},
        r"train\.csv, line 2: tag 'sports' is not one of the tag names \(food, music\)",
    ),
    "one-tag": (
        [("a", "x"), ("b", "x")],
        [("c", "x")],
        {},
        r"train\.csv: the training rows hold a single tag \('x'\)",
    ),
    "same": (
        [("a", "x y"), ("b", "y, x")],
        [("c", "x")],
        {},
        r"every training row holds the same tag set \(x, y\)",
    ),
    "no-rows": (rows(1), rows(1), {"dev": []}, r"dev\.csv: the file holds no rows"),
    "no-dev-row": (
        rows(1),
        rows(1),
        {"dev_fraction": 0.05},
        r"carves no dev row \(a draw needs at least 11 rows",
    ),
}


@pytest.mark.parametrize("train, test, files, message", CHECKS.values(), ids=CHECKS.keys())
def test_each_check_is_one_line_naming_the_file_and_row(tmp_path, train, test, files, message):
    with pytest.raises(DataError, match=message) as caught:
        load_tags(tmp_path, train, test, **{"dev_fraction": 0, **files})
    assert "\n" not in str(caught.value)


def test_json_lines_an_empty_list_and_a_nested_one_are_named(tmp_path):
    with pytest.raises(DataError, match=r"train\.jsonl, line 7: the tag set is empty \(\[\] holds no tag\)"):
        load_tags(tmp_path, [*rows(1)[:6], ("none", [])], rows(1), "jsonl")
    with pytest.raises(DataError, match=r"train\.jsonl, line 2: the tag \['b'\] is a list; .* one flat list"):
        load_tags(tmp_path, [("a", ["x", "y"]), ("b", ["x", ["b"]])], rows(1), "jsonl")


def test_a_missing_or_repeated_tags_column_is_named(tmp_path):
    with pytest.raises(DataError, match=r"has no column 'topics' .*name it as data\.files\.tags_column"):
        load_tags(tmp_path, rows(1), rows(1), tags_column="topics")
    (tmp_path / "train.csv").write_text("text,tags,tags\na,x y,z\n")
    files = FilesOptions(train="train.csv", test="train.csv", tags_column="tags")
    with pytest.raises(DataError, match=r"train\.csv, line 1: the header names the column 'tags' 2 times"):
        load("files", DataRequest(dir=str(tmp_path), sections={"files": files}, progress=False))


@pytest.mark.parametrize(
    "files, message",
    [
        ({"label_column": "label"}, r"label_column and data\.files\.tags_column are both given: .*keep one"),
        ({"clean_label_column": "clean"}, r"clean_label_column gives each row one true label, .*drop"),
        ({"inputs": "images"}, r"tag sets are read for text inputs only"),
        ({"format": "imagefolder"}, r"tag sets are read for text inputs only"),
        ({"format": "parallel"}, r"format parallel has no tags column"),
        (
            {"tags_column": None, "tag_separator": "|"},
            r"tag_separator splits the cells of data\.files\.tags_column",
        ),
    ],
    ids=["label-column", "clean-label-column", "images", "imagefolder", "parallel", "separator-alone"],
)
def test_options_that_do_not_fit_tags_are_refused_in_one_line(files, message):
    options = FilesOptions(**{"train": "a.csv", "test": "b.csv", "tags_column": "tags", **files})
    with pytest.raises(OptionsError, match=message):
        options.check()


def test_what_tags_yield_and_an_empty_separator():
    assert files_yields({"files": FilesOptions(tags_column="tags")}) == "tagged texts"
    assert files_yields({"files": FilesOptions(format="json", tags_column="tags")}) == "tagged texts"
    assert files_yields({"files": FilesOptions()}) == "texts"
    with pytest.raises(OptionsError, match=r"data\.files\.tag_separator': tag_separator is the text between"):
        read_options(FilesOptions, {"tags_column": "tags", "tag_separator": ""}, "data.files")


# ------------------------------------------------------------------------ the split's contract


def test_a_split_holds_class_ids_or_bool_tag_sets_and_its_helpers_keep_them():
    tags = torch.tensor([[True, False, True], [False, True, False], [True, True, False]])
    split = Split(torch.zeros(3, 2), tags)
    assert split.multi_label and len(split) == 3
    assert (
        torch.equal(split.first(2).labels, tags[:2])
        and split.to(torch.device("cpu")).labels.dtype == torch.bool
    )
    assert not Split(torch.zeros(3, 2), torch.tensor([0, 2, 1])).multi_label
    for wrong in (tags.long(), tags[:, 0], tags.float()):
        with pytest.raises(
            ValueError, match=r"int64 class ids of shape \(N,\) or bool tag sets of shape \(N, K\)"
        ):
            Split(torch.zeros(3, 2), wrong)
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        Split(torch.zeros(3, 2), tags[:2])
    text = TextClassSplit(torch.zeros(3, 4, dtype=torch.int64), tags, torch.tensor([4, 2, 1]))
    assert torch.equal(text.first(1).labels, tags[:1]) and isinstance(
        text.to(torch.device("cpu")), TextClassSplit
    )
    dataset = Dataset("d", split, None, split, ["a", "b", "c"], yields="tagged texts")
    assert dataset.multi_label and len(dataset.limited(2).train) == 2
    check_labels(tags, 3, "here")
    with pytest.raises(DataError, match="here: tag sets of 3 tags for 4 tag names"):
        check_labels(tags, 4, "here")
    with pytest.raises(
        DataError, match=r"here: labels of shape \(3, 3\) are read as tag sets, which are true/false"
    ):
        check_labels(tags.long().numpy(), 3, "here")


def test_a_tagged_data_set_refuses_class_ids_and_label_noise():
    texts = {"train": ["a b", "c d"], "test": ["a c"]}
    with pytest.raises(DataError, match="labels of shape"):
        tagged_text_dataset("t", texts, {"train": np.zeros((2, 2)), "test": np.zeros((1, 2))}, ["x", "y"])
    with pytest.raises(ValueError, match=r"train labels must be bool tag sets \(N, 2\)"):
        tagged_text_dataset("t", texts, {"train": np.array([0, 1]), "test": np.array([1])}, ["x", "y"])
    tags = {"train": np.array([[True, False], [True, True]]), "test": np.array([[False, True]])}
    dataset = tagged_text_dataset("t", texts, tags, ["x", "y"])
    assert dataset.train.labels.dtype == torch.bool and dataset.yields == "tagged texts"
    with pytest.raises(
        NoiseError,
        match="gives each example a set of tags \\(multi-label\\): use kind remove_tags, or drop the noise",
    ):
        add_label_noise(dataset, NoiseConfig(kind="symmetric", rate=0.2), DataRequest())
