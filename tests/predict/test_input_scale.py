"""A run records how its training images were made (range, mean, the pixel scale its data set
divided by); predict's refusal of out-of-range pixels names the file and the row and gives the
run's own scaling, and a batch far from the training images' range or mean gets a one-line warning."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.predict_helpers import predict, read_output, refused, train_digits_run

from labelemb.predict import load
from labelemb.predict.inputs import range_note, scale_advice

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, one_thread):
    from labelemb.training import build_config

    def small_config(*overrides: str):
        raw = {
            "output_dir": str(tmp_path_factory.mktemp("runs")),
            "model": {"name": "mlp", "hidden": [32]},
            "train": {"epochs": 3, "progress": False},
        }
        return build_config(raw, list(overrides))

    return train_digits_run(small_config)[0]


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def test_the_run_records_its_training_images_range_mean_and_scale(digits_run):
    images, _ = sklearn_digits()
    # The digits' split, written out independently: a seed-0 permutation, 300 test, 300 dev, the rest train.
    train = images[np.random.RandomState(0).permutation(len(images))[600:]]
    record = json.loads((digits_run / "start.json").read_text())["inputs"]
    assert record["pixel_scale"] == 16
    assert (record["low"], record["high"]) == (0.0, 1.0)
    assert record["mean"] == pytest.approx(train.mean() / 16, rel=1e-6)
    assert load(digits_run).trained.inputs == record


def test_out_of_range_floats_are_refused_naming_the_file_the_row_and_the_runs_own_scaling(
    digits_run, tmp_path, capsys
):
    images, labels = sklearn_digits()
    new = tmp_path / "new.npz"
    np.savez(new, x=images[:50].astype(np.float32), y=labels[:50])
    err = refused(capsys, digits_run, "--input", new, "--output", tmp_path / "out.csv")
    assert f"{new} [x], row 1: float pixel values must lie in [0, 1], found 0..15" in err
    assert "stored as 0..16 and divided by 16" in err and "divide yours by 16" in err
    assert "255" not in err  # the advice of an 8-bit data set would be wrong here


def test_inputs_far_from_the_training_range_get_one_warning_line_and_scaled_ones_none(
    digits_run, tmp_path, capsys
):
    images, labels = sklearn_digits()
    stored = tmp_path / "uint8.npz"
    np.savez(stored, x=images[:300].astype(np.uint8), y=labels[:300])  # 0..16 read as 0..16/255
    assert predict(digits_run, "--input", stored, "--output", tmp_path / "a.csv") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert f"{stored}: the network reads these inputs as 0..0.0627" in warnings[0]  # 16 / 255
    assert "divided by 16" in warnings[0]
    scaled = tmp_path / "scaled.npz"
    np.savez(scaled, x=(images[:300] / 16).astype(np.float32), y=labels[:300])
    assert predict(digits_run, "--input", scaled, "--output", tmp_path / "b.csv") == 0
    assert "warning:" not in capsys.readouterr().err
    assert len(read_output(tmp_path / "b.csv")) == 300


def run_with(**inputs: float) -> SimpleNamespace:
    return SimpleNamespace(inputs=inputs)


def test_the_advice_follows_the_runs_scale_and_the_warning_its_range():
    eight_bit = run_with(low=0.0, high=1.0, mean=0.13, pixel_scale=255.0)
    assert "store uint8 0..255, or floats divided by 255" in scale_advice(eight_bit)
    assert "divide by the largest value" in scale_advice(run_with())  # a run that recorded nothing
    # Within a factor 3 of the training images' highest value and mean: no warning.
    assert range_note(0.0, 0.9, 0.2, eight_bit, "x") is None
    assert range_note(0.0, 1.0, 0.0434, eight_bit, "x") is None  # 0.13 / 3 = 0.0433...
    assert range_note(0.0, 1.0, 0.0433, eight_bit, "x") is not None
    assert range_note(0.0, 0.3, 0.1, eight_bit, "x") is not None  # highest below 1 / 3
    assert range_note(0.0, 0.3, 0.1, run_with(), "x") is None


def test_a_bundle_carries_the_record(digits_run, tmp_path):
    from labelemb.cli import main

    assert main(["export", str(digits_run), "--output", str(tmp_path / "bundle")]) == 0
    assert load(tmp_path / "bundle").trained.inputs == load(digits_run).trained.inputs != {}


def test_a_text_run_records_its_texts_length_and_warns_of_texts_far_longer(tmp_path, capsys):
    from helpers.predict_helpers import train_text_run

    run_dir, _ = train_text_run(tmp_path)
    # The training texts, counted independently: three class words, one other, a digit (5 words).
    record = json.loads((run_dir / "start.json").read_text())["inputs"]
    assert record == {"mean_tokens": pytest.approx(5.0)}
    short = tmp_path / "short.txt"
    short.write_text("cat dog horse cow sheep\ncar bus train bike tram\n", encoding="utf-8")
    assert predict(run_dir, "--input", short, "--output", tmp_path / "a.csv") == 0
    assert "warning:" not in capsys.readouterr().err
    long = tmp_path / "long.txt"
    long.write_text(" ".join(["cat dog horse"] * 10) + "\n", encoding="utf-8")  # 30 words
    assert predict(run_dir, "--input", long, "--output", tmp_path / "b.csv") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {long}: these texts hold 30 tokens on average as the run reads them, its training texts "
        "5: predictions on texts of another kind are not to be trusted"
    ]
