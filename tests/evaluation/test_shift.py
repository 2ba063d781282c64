"""A finished run under shift (labelemb.evaluation.shift, labelemb shift): the figures of its selected
weights on corrupted test inputs against the metrics computed here from its own logits, the record
kept per condition while it fits and computed anew when it does not, the corrupted sets kept in the
cache, texts perturbed from the test file, the config's shift: section, and one-line refusals."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from helpers.predict_helpers import train_digits_run, train_text_run

from labelemb import load
from labelemb.cli import main
from labelemb.data import load as load_data
from labelemb.data.corruptions import corrupt, perturb_texts
from labelemb.data.corruptions.suites import MNIST_C, Condition, conditions
from labelemb.evaluation import shift
from labelemb.evaluation.shift import SHIFT_SEED, shift_run
from labelemb.metrics.calibration import measure_calibration
from labelemb.metrics.selective import aurc
from labelemb.predict import PredictError
from labelemb.rundir import SELECTED_MODEL_FILE, SHIFT_FILE
from labelemb.training import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    # Corrupted sets are kept in the cache folder: each test its own, so none reads another's.
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))


def test_the_figures_are_those_of_the_selected_weights_on_the_corrupted_test_split(small_config):
    run_dir, summary = train_digits_run(small_config)
    record = shift_run(run_dir, corruptions=["rotate@all", "shot_noise"])
    assert record["selected_step"] == summary["selected_step"]
    assert set(record["conditions"]) == {
        "rotate@1",
        "rotate@2",
        "rotate@3",
        "rotate@4",
        "rotate@5",
        "shot_noise@5",
    }
    # Independently: the selected weights' logits (labelemb.load) on images corrupted here.
    predictor = load(run_dir)
    test = load_data("digits").test
    clean = predictor.logits(test)
    assert record["clean"]["error"] == pytest.approx(summary["selected_test_error"], abs=1e-9)
    for key, held in record["conditions"].items():
        name, severity = key.split("@")
        logits = predictor.logits(corrupt(test.inputs, name, int(severity), seed=SHIFT_SEED))
        correct = logits.argmax(-1) == test.labels
        assert held["error"] == pytest.approx(100 * (1 - correct.double().mean().item()), abs=1e-9)
        assert held["ece"] == pytest.approx(measure_calibration(logits, test.labels).ece, abs=1e-9)
        scaled = measure_calibration(logits / predictor.temperature, test.labels)
        assert held["ece_scaled"] == pytest.approx(scaled.ece, abs=1e-9)
        confidence = torch.softmax(logits.double(), -1).amax(-1).numpy()
        assert held["aurc"] == pytest.approx(100 * aurc(confidence, correct.numpy()), abs=1e-6)
    # A rotation by up to 90 degrees (severity 5) costs more than one of 18 (severity 1).
    assert record["conditions"]["rotate@5"]["error"] > record["conditions"]["rotate@1"]["error"]
    assert record["conditions"]["rotate@5"]["error"] > 100 * (clean.argmax(-1) != test.labels).double().mean()


def test_a_condition_that_fits_is_read_and_what_does_not_is_computed_anew(small_config, monkeypatch, caplog):
    run_dir, _ = train_digits_run(small_config)
    first = shift_run(run_dir, corruptions=["rotate@2"])
    written = (run_dir / SHIFT_FILE).stat().st_mtime_ns
    assert shift_run(run_dir, corruptions=["rotate@2"]) == first
    assert (run_dir / SHIFT_FILE).stat().st_mtime_ns == written  # read, not written again
    # Another condition: added beside the one held, which is kept as it was.
    more = shift_run(run_dir, corruptions=["rotate@2", "translate"])
    assert (
        more["conditions"]["rotate@2"] == first["conditions"]["rotate@2"]
        and "translate@3" in more["conditions"]
    )
    # A corruption whose definition changed: its condition is computed anew.
    calls = []
    real = shift.corrupted_images
    monkeypatch.setattr(shift, "corrupted_images", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rotate = Condition("rotate", 2).corruption
    monkeypatch.setattr(
        type(rotate), "definition", lambda self: "changed" if self.name == "rotate" else "same"
    )
    shift_run(run_dir, corruptions=["rotate@2"])
    assert [c.key for c in calls] == ["rotate@2"]
    monkeypatch.undo()
    # Other code: everything anew, and said.
    monkeypatch.setenv("LABELEMB_CACHE", str(run_dir.parent / "cache"))
    monkeypatch.setattr(shift, "code_version", lambda: "0.0.0+elsewhere")
    with caplog.at_level(logging.INFO, logger="labelemb.evaluation.shift"):
        again = shift_run(run_dir, corruptions=["rotate@2"])
    assert again["labelemb"] == "0.0.0+elsewhere" and "shifting" in caplog.text
    assert set(again["conditions"]) == {"rotate@2"}
    assert again["conditions"]["rotate@2"]["error"] == first["conditions"]["rotate@2"]["error"]


def test_a_corrupted_set_is_made_once_and_read_from_the_cache(small_config, monkeypatch):
    run_dir, _ = train_digits_run(small_config)
    first = shift_run(run_dir, corruptions=["impulse_noise"])
    made = []
    monkeypatch.setattr(
        "labelemb.evaluation.corrupted.corrupt", lambda *a, **k: made.append(a) or corrupt(*a, **k)
    )
    again = shift_run(run_dir, corruptions=["impulse_noise"], refresh=True)
    assert made == [] and again["conditions"] == first["conditions"]


def test_the_same_run_shifted_twice_gives_the_same_numbers(small_config, tmp_path, monkeypatch):
    run_dir, _ = train_digits_run(small_config)
    first = shift_run(run_dir, corruptions=["glass_blur", "shear"])
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "another-cache"))  # made again, not read
    again = shift_run(run_dir, corruptions=["glass_blur", "shear"], refresh=True)
    assert again["conditions"] == first["conditions"]


def test_a_text_run_is_shifted_by_perturbing_its_test_file(tmp_path):
    run_dir, _ = train_text_run(tmp_path)
    record = shift_run(run_dir, corruptions=["word_dropout@5", "char_noise@3"])
    import csv

    with (tmp_path / "test.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    predictor = load(run_dir)
    names = predictor.classes
    labels = torch.tensor([names.index(row["label"]) for row in rows])
    for key, held in record["conditions"].items():
        name, severity = key.split("@")
        texts = perturb_texts([row["text"] for row in rows], name, int(severity), seed=SHIFT_SEED)
        wrong = (predictor.logits(texts).argmax(-1) != labels).double().mean().item()
        assert held["error"] == pytest.approx(100 * wrong, abs=1e-9)
    with pytest.raises(
        PredictError, match=r"corruption 'rotate' applies to images, but this run reads texts"
    ):
        shift_run(run_dir, corruptions=["rotate"])


def test_bad_input_is_refused_in_one_line(small_config, capsys):
    run_dir, _ = train_digits_run(small_config)
    assert main(["shift", str(run_dir), "--corruptions", "rotat", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown corruption 'rotat'; did you mean 'rotate'?" in err
    assert main(["shift", str(run_dir), "--corruptions", "word_dropout", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "applies to texts, but this run reads images: use one of" in err
    assert main(["shift", str(run_dir), "--corruptions", "rotate@9", "--no-progress"]) == 2
    assert "corruption 'rotate' has no severity 9: it has 1, 2, 3, 4, 5" in capsys.readouterr().err
    (run_dir / SELECTED_MODEL_FILE).unlink()
    (run_dir / "model.pt").unlink()
    assert main(["shift", str(run_dir), "--corruptions", "rotate", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "weights" in err


def test_the_config_names_conditions_checked_before_training_and_compare_shifts_its_runs(
    small_config, tmp_path, capsys
):
    with pytest.raises(ConfigError, match=r"shift: unknown corruption 'rotat'; did you mean 'rotate'\?"):
        small_config("shift=[rotat]")
    with pytest.raises(ConfigError, match=r"shift suite 'text' corrupts texts, but this run reads images"):
        small_config("shift=[text]")
    # The conditions judge a run: they are not what it is.
    assert small_config("shift=[mnist-c]").comparable() == small_config().comparable()
    output = tmp_path / "runs"
    config = small_config("shift=[rotate@1, brightness]", output_dir=output)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
    assert (
        main(["compare", "--config", str(path), "--methods", "onehot", "--seeds", "0", "--no-progress"]) == 0
    )
    record = json.loads((output / "small" / "onehot" / "seed0" / SHIFT_FILE).read_text())
    assert set(record["conditions"]) == {"rotate@1", "brightness@5"}


def test_the_suites_name_the_benchmarks_conditions():
    mnist_c = conditions(["mnist-c"], "images")
    assert [c.name for c in mnist_c] == list(MNIST_C) and len(mnist_c) == 15
    # MNIST-C's severities, as its generation code calls each corruption.
    assert {c.name: c.severity for c in mnist_c}["shot_noise"] == 5
    assert {c.name: c.severity for c in mnist_c}["rotate"] == 2
    scales = conditions(["severities"], "images")
    assert {c.name for c in scales} >= {"gaussian_noise", "gaussian_blur", "contrast", "rotate"}
    assert all(
        sorted(c.severity for c in scales if c.name == n) == [1, 2, 3, 4, 5] for n in {c.name for c in scales}
    )
    assert conditions(["rotate", "rotate@2", "mnist-c"], "images")[0] == Condition("rotate", 2)
    assert len(conditions(["rotate", "mnist-c"], "images")) == 15  # each condition once
    assert {c.name for c in conditions(["text"], "texts")} == {"char_noise", "word_dropout"}


def test_one_corruption_given_as_a_text_is_one_condition(small_config):
    import labelemb

    run_dir, _ = train_digits_run(small_config)
    judged = labelemb.shift(run_dir, "rotate@1", progress=False)  # one entry, not its letters
    assert list(judged.records[0]["conditions"]) == ["rotate@1"]
    both = labelemb.shift(run_dir, "rotate@1, brightness@1", progress=False)  # as --corruptions reads them
    assert sorted(both.records[0]["conditions"]) == ["brightness@1", "rotate@1"]
