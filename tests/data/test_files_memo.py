"""A text table is read once per process (issue 100's speed goal): a second load of the same files
and options is a copy of the first, never stale (a file changed under its old size and times is
read again), each load's copy is its own; the table's columns are read whole, not row by row; and
the word ids come out as they were (padding, the cut, unknown words)."""

from __future__ import annotations

import os

import datasets
import pytest
import torch

from labelemb.data import DataRequest
from labelemb.data.files import loader
from labelemb.data.files.memo import data_key, forget_data_sets
from labelemb.data.files.options import FilesOptions
from labelemb.data.text.classes import kept_tokens, padded_ids
from labelemb.data.text.corpus import Vocabulary, words
from labelemb.data.text.options import TextOptions


def write_table(path, texts: list[str]) -> None:
    rows = [f"{text},{'ab'[i % 2]}" for i, text in enumerate(texts)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")


def request(folder, **text) -> DataRequest:
    files = FilesOptions(train="train.csv", test="test.csv", dev_fraction=0)
    sections = {"files": files, **({"text": TextOptions(**text)} if text else {})}
    return DataRequest(dir=str(folder), sections=sections, progress=False)


@pytest.fixture
def table(tmp_path):
    forget_data_sets()
    write_table(tmp_path / "train.csv", ["red apple", "green pear", "ripe apple", "old pear"])
    write_table(tmp_path / "test.csv", ["apple pie", "pear jam"])
    yield tmp_path
    forget_data_sets()


def test_a_second_load_of_the_same_files_reads_none_of_them(table, monkeypatch):
    first = loader.load_files(request(table))

    def unread(*args, **kwargs):
        raise AssertionError("the files were read again")

    monkeypatch.setattr(loader, "read_splits", unread)
    again = loader.load_files(request(table))
    assert again is not first
    assert (
        again.texts
        == first.texts
        == {"train": ["red apple", "green pear", "ripe apple", "old pear"], "test": ["apple pie", "pear jam"]}
    )
    assert torch.equal(again.train.inputs, first.train.inputs)
    assert [again.test.origins.place(i) for i in range(2)] == [first.test.origins.place(i) for i in range(2)]
    assert again.test.origins.row(1) == 2  # the file's second row


def test_a_file_changed_under_its_old_size_and_times_is_read_again(table):
    first = loader.load_files(request(table))
    path = table / "train.csv"
    status = path.stat()
    # Other rows of the same length, the modification time set back: only the bytes tell.
    write_table(path, ["red apple", "green pear", "ripe melon", "old pear"])
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_size == status.st_size
    again = loader.load_files(request(table))
    assert again.texts["train"][2] == "ripe melon" and first.texts["train"][2] == "ripe apple"
    assert "melon" in again.vocabulary.index and "melon" not in first.vocabulary.index


def test_other_options_make_another_data_set(table):
    whole = loader.load_files(request(table))
    cut = loader.load_files(request(table, max_text_tokens=1))
    assert whole.train.inputs.shape[1] == 2 and cut.train.inputs.shape[1] == 1
    assert cut.cut_texts == {"train": 4, "test": 2}
    assert data_key(request(table)) != data_key(request(table, max_text_tokens=1))


def test_each_load_hands_out_a_data_set_of_its_own(table):
    first = loader.load_files(request(table))
    first.details["mine"] = True
    first.texts["train"] = []
    first.limited(1)
    again = loader.load_files(request(table))
    assert "mine" not in again.details and len(again.train) == 4 and len(again.texts["train"]) == 4


def test_files_that_cannot_be_found_are_not_kept_and_say_so(tmp_path):
    assert data_key(request(tmp_path)) is None
    with pytest.raises(ValueError, match="train file train.csv not found"):
        loader.load_files(request(tmp_path))


def test_a_table_is_read_a_column_at_a_time(table, monkeypatch):
    def one_row_at_a_time(self):
        raise AssertionError("a table's rows were read one at a time")

    monkeypatch.setattr(datasets.Dataset, "__iter__", one_row_at_a_time)
    dataset = loader.load_files(request(table))
    assert dataset.texts["test"] == ["apple pie", "pear jam"] and dataset.test.labels.tolist() == [0, 1]


def test_word_ids_are_padded_cut_and_unknown_as_before():
    ids, lengths = padded_ids([[4, 5, 6], [], [7]], pad=0)
    assert ids.tolist() == [[4, 5, 6], [0, 0, 0], [7, 0, 0]] and lengths.tolist() == [3, 0, 1]
    empty, none = padded_ids([], pad=3)
    assert tuple(empty.shape) == (0, 1) and none.tolist() == []
    assert padded_ids([[]], pad=3)[0].tolist() == [[3]]
    kept, cut = kept_tokens(["a b c", "d", ""], words, 2)
    assert kept == [["a", "b"], ["d"], []] and cut == 1
    assert kept_tokens(["a b c"], words, None) == ([["a", "b", "c"]], 0)
    vocabulary = Vocabulary.build([["a", "b", "a"]])
    assert vocabulary.encode(["a", "zebra", "b"]) == [4, 1, 5]
