"""labelemb predict never misreports (issue 56): an input's integer labels are the run's classes by
position, a text file reads as training reads it, the temperature note says why a check has none,
the run's own data is read where the run found it (also for a run that did not finish), and what
training refuses (no rows, an empty text) or cannot work (a missing image, an unknown device, an
output folder, weights that are gone) is one line naming the file and the fix."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from helpers.predict_helpers import (
    error_of,
    image_folder,
    predict,
    read_output,
    refused,
    text_table,
    train_digits_run,
    train_folder_run,
    train_text_run,
)

import labelemb
from labelemb.cli import main
from labelemb.predict.reading import read_rows
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

SHADES = ["dark", "mid", "light"]


@pytest.fixture
def digits_run(small_config):
    return train_digits_run(small_config)


@pytest.fixture
def text_run(tmp_path):
    return (*train_text_run(tmp_path), tmp_path)


@pytest.fixture
def folder_run(tmp_path):
    return (*train_folder_run(tmp_path), tmp_path)


def shade_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 6x6 images of three shades (labels 0, 1, 2: dark, mid, light)."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 3, n)
    pixels = generator.normal(50 + 70 * labels[:, None, None], 30, (n, 6, 6))
    return np.clip(pixels, 0, 255).astype(np.uint8), labels


@pytest.fixture
def shades_run(tmp_path):
    """A run on an .npz data set whose integer labels the config names (data.files.class_names)."""
    (x_train, y_train), (x_test, y_test) = shade_arrays(90, 0), shade_arrays(30, 1)
    np.savez(tmp_path / "set.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    files = {"format": "npz", "path": "set.npz", "class_names": SHADES, "cache_dir": str(tmp_path / "c")}
    raw = {
        "experiment": "shades",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "files", "dir": str(tmp_path), "files": files},
        "model": {"name": "mlp", "hidden": [8]},
        "method": {"name": "onehot"},
        "train": {"epochs": 4, "batch_size": 6, "lr": 0.01, "progress": False},
    }
    config = build_config(raw)
    return config.run_dir(), train(config), tmp_path


# ---------------------------------------------------------------- labels, texts, temperature


def test_integer_labels_of_an_npz_are_the_runs_classes_by_position(shades_run, capsys):
    run, summary, folder = shades_run
    x_test, y_test = shade_arrays(30, 1)
    np.savez(folder / "arr_test.npz", x=x_test, y=y_test)
    assert predict(run, "--input", folder / "arr_test.npz", "--output", folder / "o.csv") == 0
    rows = read_output(folder / "o.csv")
    assert [row["label"] for row in rows] == [SHADES[i] for i in y_test]
    assert error_of(rows) == summary["selected_test_error"] < 50
    assert (
        f"error on the inputs' own labels: {summary['selected_test_error']:.2f} %" in capsys.readouterr().err
    )
    np.savez(folder / "bad.npz", x=x_test[:2], y=np.array([1, 3]))
    err = refused(capsys, run, "--input", folder / "bad.npz", "--output", folder / "b.csv")
    assert "bad.npz [y], row 2: label 3 is not a class: the run's 3 classes are numbered 0 to 2" in err
    assert "(dark, mid, light)" in err and not (folder / "b.csv").exists()


def test_integer_labels_in_a_table_are_the_runs_classes_by_position(text_run):
    run, summary, folder = text_run
    names = sorted(["animal", "vehicle", "food"])  # the run's classes: its training labels sorted
    lines = (folder / "test.csv").read_text().splitlines()
    numbered = [lines[0]] + [
        f"{text},{names.index(label)}" for text, label in (s.rsplit(",", 1) for s in lines[1:])
    ]
    (folder / "numbered.csv").write_text("\n".join(numbered) + "\n")
    assert predict(run, "--input", folder / "numbered.csv", "--output", folder / "o.csv") == 0
    assert error_of(read_output(folder / "o.csv")) == summary["selected_test_error"]


def test_a_byte_order_mark_at_the_start_of_a_text_file_is_dropped(text_run):
    run, _, folder = text_run
    texts = ["cat dog horse 1", "bus train car 2", "bread rice soup 3"]
    (folder / "plain.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (folder / "marked.txt").write_text("\n".join(texts) + "\n", encoding="utf-8-sig")
    assert (folder / "marked.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_rows(folder / "marked.txt", labelemb.load(run).trained).items == texts
    assert predict(run, "--input", folder / "plain.txt", "--output", folder / "plain.csv") == 0
    assert predict(run, "--input", folder / "marked.txt", "--output", folder / "marked.csv") == 0
    assert read_output(folder / "marked.csv") == read_output(folder / "plain.csv")


def test_the_last_check_says_why_it_has_no_temperature(digits_run, tmp_path, capsys):
    run, summary = digits_run
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["step"] == summary["steps"] and "dev_error" in last and "temperature" not in last
    assert predict(run, "--split", "test", "--output", tmp_path / "l.csv", "--checkpoint", "last") == 0
    err = capsys.readouterr().err
    assert "no dev split" not in err
    assert f"no temperature: its check at step {summary['steps']} fit none" in err
    assert "did not beat the best before it" in err
    assert {row["temperature"] for row in read_output(tmp_path / "l.csv")} == {""}
    assert predict(run, "--split", "test", "--output", tmp_path / "s.csv") == 0
    assert f"(fit on its dev split at the selected check, step {summary['selected_step']})" in (
        capsys.readouterr().err
    )


# ---------------------------------------------------------------- the run's data, where it was


@pytest.fixture
def config_file_run(tmp_path, monkeypatch):
    """A run trained from a config file beside its CSVs, which it names by relative paths."""
    work = tmp_path / "work"
    work.mkdir()
    text_table(work / "train.csv", 90, 0)
    text_table(work / "test.csv", 30, 1)
    raw = {
        "experiment": "beside",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "files", "files": {"train": "train.csv", "test": "test.csv"}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "label_embedding"},
        "train": {"epochs": 3, "batch_size": 10, "lr": 0.05, "progress": False},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(work)
    assert main(["train", "--config", "config.yaml"]) == 0
    run = tmp_path / "runs" / "beside" / "label_embedding" / "seed0"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return run, json.loads((run / "summary.json").read_text()), work


def test_split_reads_the_files_where_the_run_found_them(config_file_run):
    run, summary, work = config_file_run
    out = work.parent / "o.csv"
    assert predict(run, "--split", "test", "--output", out) == 0
    assert error_of(read_output(out)) == summary["selected_test_error"]
    # A run that did not finish: its classes and shapes were recorded when it started.
    (run / "summary.json").unlink()
    last = ("--checkpoint", "last", "--output", out, "--overwrite")
    assert predict(run, *last, "--input", work / "test.csv") == 0
    assert predict(run, *last, "--split", "test") == 0
    assert len(read_output(out)) == 30
    # Files moved: --data-dir names their new folder.
    moved = work.parent / "moved"
    shutil.move(work, moved)
    assert predict(run, *last, "--split", "test", "--data-dir", moved) == 0


def test_an_unfinished_run_that_recorded_no_classes_says_how_to_find_its_data(
    config_file_run, capsys, monkeypatch
):
    run, _, work = config_file_run
    (run / "summary.json").unlink()
    (run / "start.json").unlink(missing_ok=True)  # as an unfinished run of an earlier labelemb
    out = work.parent / "o.csv"
    err = refused(capsys, run, "--checkpoint", "last", "--input", work / "test.csv", "--output", out)
    assert "recorded no class names" in err and "set LABELEMB_DATA to the folder" in err
    assert "--data-dir" not in err  # predict --input reads no --data-dir
    monkeypatch.setenv("LABELEMB_DATA", str(work))
    assert predict(run, "--checkpoint", "last", "--input", work / "test.csv", "--output", out) == 0


# ---------------------------------------------------------------- refused, in one line


def test_an_input_with_no_rows_or_an_empty_text_is_refused(text_run, capsys):
    run, _, folder = text_run
    out = folder / "o.csv"
    (folder / "header.csv").write_text("text,label\n")
    err = refused(capsys, run, "--input", folder / "header.csv", "--output", out)
    assert "header.csv holds no rows" in err
    (folder / "gap.csv").write_text("text,label\ncat dog,animal\n,food\n")
    err = refused(capsys, run, "--input", folder / "gap.csv", "--output", out)
    assert "gap.csv, line 3: the text is empty; fill it in or remove the row" in err
    (folder / "gap.txt").write_text("cat dog\n\nbus car\n")
    assert "gap.txt, line 2: the text is empty" in refused(
        capsys, run, "--input", folder / "gap.txt", "--output", out
    )
    assert not out.exists()


def test_an_input_that_is_not_utf8_names_the_file_and_the_fix(text_run, capsys):
    run, _, folder = text_run
    out = folder / "o.csv"
    (folder / "latin.csv").write_bytes("text,label\ncat dog,animal\ncaf\xe9 bread,food\n".encode("latin-1"))
    err = refused(capsys, run, "--input", folder / "latin.csv", "--output", out)
    assert "latin.csv: line 3 is not UTF-8 text (byte 0xe9" in err and "save the file as UTF-8" in err
    (folder / "latin.txt").write_bytes("caf\xe9 bread\n".encode("latin-1"))
    err = refused(capsys, run, "--input", folder / "latin.txt", "--output", out)
    assert "latin.txt, line 1: bytes that are not UTF-8" in err and "convert the file to UTF-8" in err


def test_a_missing_image_in_a_table_of_paths_is_named(folder_run, capsys):
    run, _, folder = folder_run
    (folder / "paths.csv").write_text("image,label\ntest/dark/0.png,dark\ntest/dark/99.png,dark\n")
    err = refused(capsys, run, "--input", folder / "paths.csv", "--output", folder / "o.csv")
    assert f"paths.csv, line 3: image {folder / 'test/dark/99.png'} does not exist" in err
    assert "fix the path or remove the row" in err


def test_sub_folders_that_are_not_classes_are_no_labels(folder_run, capsys):
    run, _, folder = folder_run
    image_folder(folder / "batches" / "one", {"dark": 2, "light": 2}, 5)
    assert predict(run, "--input", folder / "batches" / "one", "--output", folder / "o.csv") == 0
    assert "error on" in capsys.readouterr().err  # dark/ and light/ are the run's classes
    shutil.move(folder / "batches" / "one" / "dark", folder / "batches" / "monday")
    shutil.move(folder / "batches" / "one" / "light", folder / "batches" / "tuesday")
    shutil.rmtree(folder / "batches" / "one")
    assert predict(run, "--input", folder / "batches", "--output", folder / "b.csv") == 0
    assert "label" not in read_output(folder / "b.csv")[0] and "error on" not in capsys.readouterr().err


def test_an_unknown_device_lists_the_devices_there_are(digits_run, tmp_path, capsys):
    run, _ = digits_run
    err = refused(capsys, run, "--split", "test", "--output", tmp_path / "o.csv", "--device", "gpu")
    assert "device 'gpu' is not a device name; this machine has cpu" in err


def test_an_output_folder_is_refused_before_anything_is_read(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    args = ("--split", "test", "--output", tmp_path / "out", "--overwrite")
    err = refused(capsys, tmp_path / "no-run", *args)  # no run is read: the output is refused first
    assert f"--output {tmp_path / 'out'} is a folder; give the file to write" in err


def test_a_run_whose_weights_are_gone_gets_advice_that_works(digits_run, tmp_path, capsys):
    run, summary = digits_run
    gone = tmp_path / "gone"
    shutil.copytree(run, gone)
    (gone / "model.pt").unlink()
    (gone / "model.selected.pt").unlink()
    out = tmp_path / "o.csv"
    # The checkpoint holds the last step's network: --checkpoint last reads it.
    assert "--checkpoint last" in refused(capsys, gone, "--split", "test", "--output", out)
    assert predict(gone, "--split", "test", "--output", out, "--checkpoint", "last") == 0
    assert error_of(read_output(out)) == summary["final_test_error"]
    capsys.readouterr()
    (gone / "checkpoint.pt").unlink()
    for checkpoint in ("selected", "last"):
        err = refused(
            capsys, gone, "--split", "test", "--output", tmp_path / "x.csv", "--checkpoint", checkpoint
        )
        assert "has no weights to predict with" in err
        assert f"labelemb train --config {gone / 'config.yaml'} --output-dir OTHER" in err
    assert main(["train", "--config", str(gone / "config.yaml"), "--output-dir", str(tmp_path / "o")]) == 0
    again = tmp_path / "o" / "small" / "onehot" / "seed0"
    assert predict(again, "--split", "test", "--output", tmp_path / "again.csv") == 0
