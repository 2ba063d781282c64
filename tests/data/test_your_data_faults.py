"""Your own files as a new user and an adversary meet them (data.name: files): never a result from
data other than the data a run names, never a traceback, every message naming the file and the
line an editor shows, and nothing dropped or accepted without a word."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelemb.cli import main
from labelemb.data import DataError, DataRequest, load
from labelemb.data.files.options import FilesOptions
from labelemb.rundir import RunDirError
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {"a": "apple banana cherry", "b": "dog eagle fox", "c": "green blue red"}


def table(repeat: int = 10) -> list[tuple[str, str]]:
    return [(f"{text} {i}", label) for i in range(repeat) for label, text in WORDS.items()]


def write_csv(path: Path, rows: list[tuple[object, object]], header: str = "text,label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f'"{text}",{label}\n' for text, label in rows), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[tuple[object, object]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


def load_files(folder: Path, **files):
    files.setdefault("cache_dir", str(folder / "cache"))
    request = DataRequest(dir=str(folder), sections={"files": FilesOptions(**files)}, progress=False)
    return load("files", request)


def raw_config(folder: Path, **files) -> dict:
    files = {
        "format": "csv",
        "train": "train.csv",
        "test": "test.csv",
        "cache_dir": str(folder / "cache"),
        **files,
    }
    return {
        "experiment": "mine",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "bag_of_words"},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 4, "progress": False},
    }


# ------------------------------------------------------------------------- silent wrong results


def test_a_table_replaced_under_the_same_modification_time_is_read_anew(tmp_path):
    train_file = write_csv(tmp_path / "train.csv", table())
    write_csv(tmp_path / "test.csv", table(1))
    first = load_files(tmp_path, train="train.csv", test="test.csv", dev_fraction=0)
    stamp = train_file.stat()
    # Other rows and another class, put back under the old time, as `cp -p` or `git checkout` do.
    write_csv(train_file, [(t, "z" if lab == "c" else lab) for t, lab in table()] + [("x y", "a")])
    os.utime(train_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert train_file.stat().st_mtime_ns == stamp.st_mtime_ns
    write_csv(tmp_path / "test.csv", [("dog", "a"), ("red", "z")])
    second = load_files(tmp_path, train="train.csv", test="test.csv", dev_fraction=0)
    assert first.class_names == ["a", "b", "c"] and second.class_names == ["a", "b", "z"]
    assert len(first.train) == 30 and len(second.train) == 31
    assert first.details["fingerprint"] != second.details["fingerprint"]


def test_a_finished_run_on_edited_files_is_refused_not_reused(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", table())
    write_csv(tmp_path / "test.csv", table(1))
    raw = raw_config(tmp_path)
    summary = train(build_config(raw))
    assert train(build_config(raw)) == summary  # the same files: read back, not trained again
    write_csv(tmp_path / "train.csv", table()[:-1] + [("one more row", "a")])
    with pytest.raises(RunDirError, match="holds a finished run with a different config: it trained on data"):
        train(build_config(raw))
    # The command line says it in one line, before any training, and the run is kept as it was.
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(yaml.safe_dump({k: v for k, v in raw.items() if k != "method"}))
    capsys.readouterr()
    code = main(
        ["compare", "--config", str(config_file), "--methods", "onehot", "--seeds", "0", "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "finished run with a different config" in err[0], err
    assert json.loads((tmp_path / "runs/mine/onehot/seed0/summary.json").read_text()) == summary


# ------------------------------------------------------------------------- tracebacks -> one line


def test_a_carved_dev_split_without_a_row_is_refused_before_training_and_leaves_nothing(tmp_path):
    write_csv(tmp_path / "train.csv", table(2))  # 2 rows a class: 10 % of each is no row
    write_csv(tmp_path / "test.csv", table(1))
    with pytest.raises(
        DataError, match=r"train\.csv: data.files.dev_fraction 0.1 of the 6 training rows carves no dev"
    ):
        train(build_config(raw_config(tmp_path)))
    assert not (tmp_path / "runs").exists()  # no empty run folder, no stray .lock
    np.savez(tmp_path / "a.npz", x_train=np.zeros((6, 4, 4), np.uint8), y_train=np.arange(6) % 3,
             x_test=np.zeros((3, 4, 4), np.uint8), y_test=np.arange(3))  # fmt: skip
    with pytest.raises(
        DataError, match=r"a\.npz \[x_train\]: data.files.dev_fraction 0.1 .* carves no dev row"
    ):
        load_files(tmp_path, format="npz", path="a.npz")


def test_a_dev_fraction_near_one_keeps_a_training_row_of_every_class(tmp_path):
    write_csv(tmp_path / "train.csv", table(3))
    write_csv(tmp_path / "test.csv", table(1))
    dataset = load_files(tmp_path, train="train.csv", test="test.csv", dev_fraction=0.99)
    assert sorted(dataset.train.labels.tolist()) == [0, 1, 2] and len(dataset.dev) == 6


def test_an_empty_dev_file_names_the_fix(tmp_path):
    write_csv(tmp_path / "train.csv", table())
    write_csv(tmp_path / "test.csv", table(1))
    write_csv(tmp_path / "dev.csv", [])
    with pytest.raises(
        DataError,
        match=r"dev\.csv: the file holds no rows; add rows to it, or leave it out where its split is opt",
    ):
        load_files(tmp_path, train="train.csv", dev="dev.csv", test="test.csv")


def test_labels_of_mixed_types_name_both_lines(tmp_path):
    rows = [(t, 1 if i < 4 else "cat") for i, (t, _) in enumerate(table())]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", table(1))
    with pytest.raises(
        DataError,
        match=r"train\.jsonl, line 5: the label 'cat' is text, but .*train\.jsonl, line 1 has 1, a number",
    ):
        load_files(tmp_path, format="json", train="train.jsonl", test="test.jsonl")


def test_a_list_of_labels_under_the_label_column_says_to_name_it_the_tags_column(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", table()[:3] + [("x", ["a", "b"])] + table()[3:])
    write_jsonl(tmp_path / "test.jsonl", table(1))
    with pytest.raises(
        DataError,
        match=r"train\.jsonl, line 4: the label is a list \(\['a', 'b'\]\); a row of several labels is "
        r"a tag set: name the column as data\.files\.tags_column",
    ):
        load_files(tmp_path, format="json", train="train.jsonl", test="test.jsonl")


# ------------------------------------------------------------------------- messages that are true


def test_a_label_train_lacks_is_named_on_its_own_line_when_the_column_reads_as_text(tmp_path):
    write_csv(tmp_path / "train.csv", [(t, "abc".index(lab)) for t, lab in table()])
    # One bad label on data row 7 makes the reader take the whole column as text.
    test_rows = [(t, "abc".index(lab)) for t, lab in table(2)] + [("q", "cat")]
    write_csv(tmp_path / "test.csv", test_rows)
    with pytest.raises(
        DataError,
        match=r"test\.csv, line 8: label 'cat' is not a class \(train does not have it; train's classes: 0,",
    ):
        load_files(tmp_path, train="train.csv", test="test.csv")


def test_integer_labels_in_train_match_their_text_in_test(tmp_path, caplog):
    write_jsonl(tmp_path / "train.jsonl", [(t, "abc".index(lab)) for t, lab in table()])
    write_jsonl(tmp_path / "test.jsonl", [(t, str("abc".index(lab))) for t, lab in table(1)])
    with caplog.at_level("WARNING", logger="labelemb"):
        dataset = load_files(tmp_path, format="json", train="train.jsonl", test="test.jsonl")
    assert dataset.class_names == ["0", "1", "2"] and dataset.test.labels.tolist() == [0, 1, 2]
    assert "test.jsonl, line 1: label '0' matched to the class '0' by its text" in caplog.text


@pytest.mark.parametrize("compress", [False, True])
def test_bytes_that_are_not_utf8_name_the_line(tmp_path, compress):
    content = ("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in table())).encode()
    content = content.replace(b"dog eagle fox 2", b"dog \xff\xfe fox 2")
    name = "train.csv.gz" if compress else "train.csv"
    (tmp_path / name).write_bytes(gzip.compress(content) if compress else content)
    write_csv(tmp_path / "test.csv", table(1))
    line = content.split(b"\n").index(next(x for x in content.split(b"\n") if b"\xff" in x)) + 1
    with pytest.raises(
        DataError,
        match=rf"{name}, line {line} is not UTF-8 text \(byte 0xff at column 6\); save the file as UTF-8",
    ):
        load_files(tmp_path, train=name, test="test.csv")


def test_a_malformed_json_line_is_named(tmp_path):
    lines = [json.dumps({"text": t, "label": lab}) for t, lab in table()]
    lines[6] = '{"text": "x", "label": '
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    write_jsonl(tmp_path / "test.jsonl", table(1))
    with pytest.raises(
        DataError, match=r"train\.jsonl, line 7 is not valid JSON \(Expecting value at column 24\)"
    ):
        load_files(tmp_path, format="json", train="train.jsonl", test="test.jsonl")
    lines[6] = '["x", "a"]'
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl, line 7 holds a JSON list, not an object"):
        load_files(tmp_path, format="json", train="train.jsonl", test="test.jsonl")


def test_lines_are_counted_as_an_editor_shows_them_with_blank_lines_and_a_multi_line_cell(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"a b",a\n\n"one\ntwo",b\n"c d",a\n"e f",\n"g h",b\n')
    write_csv(tmp_path / "test.csv", table(1))
    with pytest.raises(DataError, match=r"train\.csv, line 7: the label is missing"):
        load_files(tmp_path, train="train.csv", test="test.csv", dev_fraction=0)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_empty_or_null_text_is_called_empty(tmp_path, fmt):
    rows = table()
    if fmt == "csv":
        (tmp_path / "train.csv").write_text(
            "text,label\n"
            + "".join(f'"{t}",{lab}\n' if i != 3 else f",{lab}\n" for i, (t, lab) in enumerate(rows))
        )
    else:
        write_jsonl(
            tmp_path / "train.jsonl", [(None if i == 3 else t, lab) for i, (t, lab) in enumerate(rows)]
        )
    write_csv(tmp_path / "test.csv", table(1))
    files = {"format": fmt, "train": f"train.{'csv' if fmt == 'csv' else 'jsonl'}", "test": "test.csv"}
    if fmt == "json":
        write_jsonl(tmp_path / "test.jsonl", table(1))
        files["test"] = "test.jsonl"
    line = 5 if fmt == "csv" else 4
    with pytest.raises(DataError, match=rf"line {line}: the text is empty; fill it in or remove the row"):
        load_files(tmp_path, **files)


def _png(path: Path, shade: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4), color=shade).save(path)


def test_image_paths_in_a_table_are_found_beside_the_table_from_any_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    rows = []
    for i in range(12):
        _png(project / "data" / "img" / f"{i}.png", 20 * i)
        rows.append((f"img/{i}.png", "ab"[i % 2]))
    write_csv(project / "data" / "train.csv", rows, header="image,label")
    write_csv(project / "data" / "test.csv", rows[:4], header="image,label")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    files = {"inputs": "images", "train": "data/train.csv", "test": "data/test.csv", "dev_fraction": 0}
    dataset = load_files(project, **files)
    assert len(dataset.train) == 12 and int(dataset.train.inputs[3].float().mean()) == 60
    write_csv(project / "data" / "test.csv", [*rows[:2], ("img/gone.png", "a")], header="image,label")
    gone = project / "data" / "img" / "gone.png"
    with pytest.raises(DataError, match=rf"test\.csv, line 4, image {gone}: cannot be read"):
        load_files(project, **files)


def test_a_table_cache_that_cannot_be_written_names_the_cache_folder(tmp_path):
    write_csv(tmp_path / "train.csv", table())
    write_csv(tmp_path / "test.csv", table(1))
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(
        DataError, match=r"table cache folder .*a-file/hf/.*data\.files\.cache_dir \(or \$LABELEMB_CACHE\)"
    ) as raised:
        load_files(tmp_path, train="train.csv", test="test.csv", cache_dir=str(tmp_path / "a-file"))
    assert "train.csv" not in str(raised.value)


def test_a_missing_default_column_says_which_names_were_looked_for(tmp_path):
    write_csv(tmp_path / "train.csv", table(), header="body,y")
    write_csv(tmp_path / "test.csv", table(1), header="body,y")
    with pytest.raises(
        DataError,
        match=r"train\.csv has no input column named text or sentence or content \(its columns: body, y\); "
        r"name it as data\.files\.input_column",
    ):
        load_files(tmp_path, train="train.csv", test="test.csv")


def test_one_hot_labels_in_arrays_are_named_as_such(tmp_path):
    np.savez(tmp_path / "a.npz", x_train=np.zeros((20, 4, 4), np.uint8), y_train=np.eye(2)[np.arange(20) % 2],
             x_test=np.zeros((4, 4, 4), np.uint8), y_test=np.arange(4) % 2)  # fmt: skip
    with pytest.raises(
        DataError, match=r"y_train has shape \(20, 2\), not one label per row \(one-hot.*argmax\(axis=1\)"
    ):
        load_files(tmp_path, format="npz", path="a.npz")


# ------------------------------------------------------------------------- nothing dropped silently


def test_links_in_an_image_folder_that_lead_nowhere_are_named_in_a_warning(tmp_path, caplog):
    for name in ("cat", "dog"):
        for i in range(6):
            _png(tmp_path / "train" / name / f"{i}.png", 30 * i)
    (tmp_path / "train" / "cat" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "train" / "dog" / "loop.png").symlink_to(tmp_path / "train" / "dog" / "loop.png")
    with caplog.at_level("WARNING", logger="labelemb"):
        dataset = load_files(tmp_path, format="imagefolder", train="train", test="train", dev_fraction=0)
    assert len(dataset.train) == 12
    assert "2 link(s) that lead nowhere (a missing target or a loop) left out" in caplog.text


def test_a_class_named_twice_is_refused(tmp_path):
    write_csv(tmp_path / "train.csv", table())
    write_csv(tmp_path / "test.csv", table(1))
    with pytest.raises(DataError, match=r"class_names names 'a' twice \(positions 1 and 4\)"):
        load_files(tmp_path, train="train.csv", test="test.csv", class_names=["a", "b", "c", "a"])


def test_labels_and_texts_spelt_like_missing_values_are_read_as_written(tmp_path):
    spellings = ["NA", "N/A", "null", "None", "nan"]
    rows = [(f"{word} text {i}", word) for i in range(3) for word in spellings] + [
        ("NA", "NA"),
        ("null", "None"),
    ]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "test.csv", rows[:5])
    dataset = load_files(tmp_path, train="train.csv", test="test.csv", dev_fraction=0)
    assert dataset.class_names == sorted(spellings) and len(dataset.train) == 17


def test_a_header_that_repeats_a_read_column_is_refused_and_another_repeat_warned(tmp_path, caplog):
    (tmp_path / "train.csv").write_text(
        "text,label,label\n" + "".join(f'"{t}",{lab},zz\n' for t, lab in table())
    )
    write_csv(tmp_path / "test.csv", table(1))
    with pytest.raises(
        DataError, match=r"train\.csv, line 1: the header names the column 'label' 2 times \(columns 2, 3\)"
    ):
        load_files(tmp_path, train="train.csv", test="test.csv")
    (tmp_path / "train.csv").write_text(
        "text,note,label,note\n" + "".join(f'"{t}",n,{lab},m\n' for t, lab in table())
    )
    with caplog.at_level("WARNING", logger="labelemb"):
        load_files(tmp_path, train="train.csv", test="test.csv")
    assert "the header repeats the column(s) 'note', which are not read" in caplog.text


def test_an_epoch_of_a_single_update_is_warned_with_the_key_to_change(tmp_path, caplog):
    write_csv(tmp_path / "train.csv", table())
    write_csv(tmp_path / "test.csv", table(1))
    raw = raw_config(tmp_path, dev_fraction=0)
    raw["train"]["batch_size"] = 100
    with caplog.at_level("WARNING", logger="labelemb"):
        train(build_config(raw))
    assert "30 training examples in batches of 100 make 1 update(s) an epoch" in caplog.text
    assert "lower train.batch_size" in caplog.text


def test_an_image_that_does_not_decode_leaves_no_run_folder_and_no_cache_lock(tmp_path):
    for name in ("cat", "dog"):
        for i in range(6):
            _png(tmp_path / "train" / name / f"{i}.png", 30 * i)
    (tmp_path / "train" / "dog" / "5.png").write_bytes(b"\x89PNG broken")
    raw = raw_config(tmp_path, format="imagefolder", train="train", test="train", dev_fraction=0)
    raw["model"] = {"name": "mlp", "hidden": [8]}
    with pytest.raises(DataError, match=r"5\.png: not a readable image"):
        train(build_config(raw))
    assert not (tmp_path / "runs").exists()
    assert list((tmp_path / "cache" / "images").glob("*")) == []


def test_a_data_error_on_a_busy_machine_is_still_one_line(tmp_path, capsys, monkeypatch):
    import labelemb.training.threads as threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda interval=0.2: float(threads._usable_cores()))
    monkeypatch.setattr(threads, "_usable_cores", lambda: 2)
    write_csv(tmp_path / "train.csv", table(2))
    write_csv(tmp_path / "test.csv", table(1))
    raw = raw_config(tmp_path)
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    code = main(["train", "--config", str(config_file)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "carves no dev row" in err[0], err
    assert not (tmp_path / "runs").exists()
