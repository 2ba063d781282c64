"""labelemb predict and labelemb.load (issue 48): predictions on a run's own test data give exactly
the test error its summary recorded (digits, a CSV of texts, an image folder, a frozen backbone),
at the selected check and at the last; every bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers.predict_helpers import (
    error_of,
    predict,
    read_output,
    refused,
    train_digits_run,
    train_folder_run,
    train_npz_run,
    train_pair_run,
    train_text_run,
)

import labelemb
from labelemb.cli import main
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def digits_run(small_config):
    return train_digits_run(small_config)


def test_digits_selected_and_last_checks_give_the_recorded_errors(digits_run, tmp_path, capsys):
    run, summary = digits_run
    assert summary["selected_step"] != summary["steps"]  # the selected weights are model.selected.pt
    assert predict(run, "--split", "test", "--output", tmp_path / "s.csv", "--top-k", "3") == 0
    rows = read_output(tmp_path / "s.csv")
    assert len(rows) == 300 and [row["row"] for row in rows[:3]] == ["1", "2", "3"]
    assert error_of(rows) == summary["selected_test_error"]
    assert {"class_1", "probability_3", "temperature"} <= set(rows[0])
    assert float(rows[0]["temperature"]) == pytest.approx(summary["selected_temperature"], rel=1e-5)
    assert "temperature T =" in capsys.readouterr().err
    assert predict(run, "--split", "test", "--output", tmp_path / "l.csv", "--checkpoint", "last") == 0
    assert error_of(read_output(tmp_path / "l.csv")) == summary["final_test_error"]


def test_load_in_python_gives_names_probabilities_and_the_module(digits_run, digits):
    run, summary = digits_run
    predictor = labelemb.load(run)
    assert predictor.classes == summary["class_names"]
    probabilities = predictor.predict_proba(digits.test.inputs[:5])
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(1), 1.0)
    predictions = predictor.predict(digits.test.inputs[:5])
    assert [p.label for p in predictions] == [predictor.classes[i] for i in probabilities.argmax(1)]
    # An image as a uint8 array (H, W) goes through the image decoding of a run's own files.
    pixels = (digits.test.inputs[0, 0].numpy() * 255).round().astype(np.uint8)
    assert predictor.predict([pixels])[0].label == predictions[0].label
    scores = predictor.model(digits.test.inputs[:5])
    assert scores.shape == (5, 10)


@pytest.fixture
def text_run(tmp_path):
    return (*train_text_run(tmp_path), tmp_path)


def test_a_csv_of_texts_gives_the_recorded_error(text_run):
    run, summary, folder = text_run
    assert predict(run, "--input", folder / "test.csv", "--output", folder / "out.csv") == 0
    rows = read_output(folder / "out.csv")
    assert len(rows) == 30 and error_of(rows) == summary["selected_test_error"]
    # The same texts from Python, and one a line from a text file.
    texts = [line.rsplit(",", 1)[0].strip('"') for line in (folder / "test.csv").read_text().splitlines()[1:]]
    assert [p.label for p in labelemb.load(run).predict(texts)] == [row["prediction"] for row in rows]
    (folder / "texts.txt").write_text("\n".join(texts) + "\n")
    assert predict(run, "--input", folder / "texts.txt", "--output", folder / "t.jsonl") == 0
    lines = [json.loads(line) for line in (folder / "t.jsonl").read_text().splitlines()]
    assert [line["prediction"] for line in lines] == [row["prediction"] for row in rows]


def test_json_lines_and_parquet_tables_read_as_the_csv(text_run):
    import pandas as pd

    run, _, folder = text_run
    table = pd.read_csv(folder / "test.csv", keep_default_na=False, dtype=str)
    table.to_json(folder / "test.jsonl", orient="records", lines=True)
    table.to_parquet(folder / "test.parquet")
    outputs = []
    for name in ("test.csv", "test.jsonl", "test.parquet"):
        assert predict(run, "--input", folder / name, "--output", folder / f"{name}.out.csv") == 0
        outputs.append([row["prediction"] for row in read_output(folder / f"{name}.out.csv")])
    assert outputs[0] == outputs[1] == outputs[2]


def test_npz_arrays_give_the_recorded_error(tmp_path):
    config, summary, _ = train_npz_run(tmp_path, seed=3)
    assert predict(config.run_dir(), "--input", tmp_path / "set.npz", "--output", tmp_path / "o.csv") == 0
    rows = read_output(tmp_path / "o.csv")
    assert len(rows) == 20 and error_of(rows) == summary["selected_test_error"]


@pytest.fixture
def folder_run(tmp_path):
    return (*train_folder_run(tmp_path), tmp_path)


def test_an_image_folder_gives_the_recorded_error(folder_run):
    run, summary, folder = folder_run
    assert predict(run, "--input", folder / "test", "--output", folder / "out.csv") == 0
    rows = read_output(folder / "out.csv")
    assert len(rows) == 16 and rows[0]["file"] == "dark/0.png"
    assert error_of(rows) == summary["selected_test_error"]
    # One image file, and a table of image paths beside it.
    assert predict(run, "--input", folder / "test" / "light" / "3.png", "--output", folder / "one.csv") == 0
    one = read_output(folder / "one.csv")
    assert one[0]["prediction"] == next(r["prediction"] for r in rows if r["file"] == "light/3.png")
    (folder / "paths.csv").write_text(
        "image,label\n" + "".join(f"test/{r['file']},{r['label']}\n" for r in rows)
    )
    assert predict(run, "--input", folder / "paths.csv", "--output", folder / "p.csv") == 0
    assert [r["prediction"] for r in read_output(folder / "p.csv")] == [r["prediction"] for r in rows]


def test_a_frozen_backbone_gives_the_recorded_error(small_config, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    config = small_config("model.freeze=true", "train.lr=0.01")
    summary = train(config)
    assert predict(config.run_dir(), "--split", "test", "--output", tmp_path / "f.csv") == 0
    assert error_of(read_output(tmp_path / "f.csv")) == summary["selected_test_error"]


# ---------------------------------------------------------------- bad input: one line, exit 2


def test_a_folder_that_is_not_a_run(tmp_path, capsys):
    err = refused(capsys, tmp_path, "--split", "test", "--output", tmp_path / "o.csv")
    assert "is neither a labelemb run folder" in err and not (tmp_path / "o.csv").exists()


def test_an_output_that_exists_is_kept_unless_overwrite(digits_run, tmp_path, capsys):
    run, _ = digits_run
    (tmp_path / "o.csv").write_text("mine\n")
    assert "exists; choose another --output" in refused(
        capsys, run, "--split", "test", "--output", tmp_path / "o.csv"
    )
    assert (tmp_path / "o.csv").read_text() == "mine\n"
    assert predict(run, "--split", "test", "--output", tmp_path / "o.csv", "--overwrite") == 0


def test_a_run_still_training_is_refused_unless_last(digits_run, tmp_path, capsys):
    run, _ = digits_run
    training = tmp_path / "training"
    shutil.copytree(run, training)
    (training / "summary.json").unlink()
    assert "still training" in refused(capsys, training, "--split", "test", "--output", tmp_path / "o.csv")
    assert predict(training, "--split", "test", "--output", tmp_path / "o.csv", "--checkpoint", "last") == 0


def test_a_run_of_another_version(digits_run, tmp_path, capsys):
    run, _ = digits_run
    other = tmp_path / "other"
    shutil.copytree(run, other)
    config = other / "config.yaml"
    config.write_text(config.read_text() + "future_key: 1\n")
    err = refused(capsys, other, "--split", "test", "--output", tmp_path / "o.csv")
    assert "future_key" in err and "another labelemb version" in err


def test_an_input_without_the_runs_input_column(text_run, capsys):
    run, _, folder = text_run
    (folder / "bad.csv").write_text("words,label\ncat dog,animal\n")
    err = refused(capsys, run, "--input", folder / "bad.csv", "--output", folder / "o.csv")
    assert "has no column 'text'" in err and "its columns: words, label" in err
    assert not (folder / "o.csv").exists()


def test_images_the_run_cannot_take(folder_run, capsys):
    run, _, folder = folder_run
    bad = folder / "bad"
    bad.mkdir()
    (bad / "a.png").write_text("not an image")
    err = refused(capsys, run, "--input", bad, "--output", folder / "o.csv")
    assert "a.png: not a readable image" in err and not (folder / "o.csv").exists()
    (folder / "texts.txt").write_text("a text\n")
    assert "cannot read input" in refused(
        capsys, run, "--input", folder / "texts.txt", "--output", folder / "o.csv"
    )


def test_a_sequence_run_decodes_source_lines_as_its_checks_did(tmp_path):
    run, summary = train_pair_run(tmp_path)
    recorded = (run / summary["selected_outputs"] / "test.txt").read_text().splitlines()
    assert predict(run, "--input", tmp_path / "test.en", "--output", tmp_path / "o.csv") == 0
    rows = read_output(tmp_path / "o.csv")
    assert [row["line"] for row in rows] == ["1", "2", "3"] and [row["output"] for row in rows] == recorded
    assert labelemb.load(run).translate(["the dog", "good tea"]) == [recorded[0], recorded[2]]
    assert main(["export", str(run), "--format", "bundle", "--output", str(tmp_path / "bundle")]) == 0
    assert labelemb.load(tmp_path / "bundle").translate("the dog") == [recorded[0]]
    assert main(["export", str(run), "--format", "onnx", "--output", str(tmp_path / "onnx")]) == 2


def test_a_run_without_its_selected_weights_says_to_ask_for_the_last(digits_run, tmp_path, capsys):
    run, summary = digits_run
    older = tmp_path / "older"
    shutil.copytree(run, older)
    (older / "model.selected.pt").unlink()  # as a run trained before the selected weights were kept
    err = refused(capsys, older, "--split", "test", "--output", tmp_path / "o.csv")
    assert "kept only its final weights" in err and "--checkpoint last" in err
    assert predict(older, "--split", "test", "--output", tmp_path / "o.csv", "--checkpoint", "last") == 0
    assert error_of(read_output(tmp_path / "o.csv")) == summary["final_test_error"]
