"""Conformal prediction sets of new inputs (issue 57): ``labelemb predict --sets LEVEL`` and
``Predictor.predict_sets`` give metrics.conformal's sets with the threshold of the run's own dev
split, recorded once (conformal.safetensors) and carried into a bundle; on the run's test split
they reach the coverage its evaluation.json measured; every refusal is one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers.predict_helpers import (
    predict,
    read_output,
    refused,
    train_digits_run,
    train_pair_run,
    train_text_run,
)

import labelemb
from labelemb.cli import main
from labelemb.data import load as load_data
from labelemb.evaluation.run import evaluate_run
from labelemb.metrics.conformal import calibrate_threshold, prediction_sets
from labelemb.predict import PredictError
from labelemb.rundir import CONFORMAL_FILE, EVALUATION_FILE, load_safetensors, save_safetensors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def evaluated_run(small_config):
    """A digits run judged by its evaluation, which records its calibration."""
    run, summary = train_digits_run(small_config)
    evaluate_run(run)
    return run, summary


def _expected_sets(run, level, method):
    """Each test example's set as metrics.conformal makes it, with the threshold of the run's dev
    split computed here from the selected weights' logits: class indices in descending probability."""
    predictor = labelemb.load(run)
    data = load_data("digits")
    temperature = predictor.temperature
    dev_logits, test_logits = predictor.logits(data.dev), predictor.logits(data.test)
    threshold = calibrate_threshold(dev_logits, data.dev.labels, level, method, temperature=temperature)
    members = prediction_sets(test_logits, threshold, method, temperature=temperature)
    probabilities = torch.softmax(test_logits.double() / temperature, dim=-1)
    order = probabilities.sort(dim=-1, descending=True, stable=True).indices
    return [[int(k) for k in order[row] if members[row, k]] for row in range(len(test_logits))]


@pytest.mark.parametrize(("level", "method"), [(0.9, "thr"), (0.9, "aps"), (0.9, "raps"), (0.75, "thr")])
def test_the_sets_are_metrics_conformal_sets_with_the_dev_threshold(evaluated_run, tmp_path, level, method):
    run, summary = evaluated_run
    names = summary["class_names"]
    output = tmp_path / "sets.csv"
    assert predict(run, "--split", "test", "--output", output, "--sets", level, "--set-method", method) == 0
    want = _expected_sets(run, level, method)
    rows = read_output(output)
    assert [row["set"] for row in rows] == ["|".join(names[k] for k in found) for found in want]
    assert [int(row["set_size"]) for row in rows] == [len(found) for found in want]
    assert any(len(found) > 1 for found in want)  # sets, not just the argmax
    # The Python predictor: the same sets, each class's probability beside it, descending.
    found = labelemb.load(run).predict_sets(load_data("digits").test.inputs, level, method)
    assert [list(s.classes) for s in found] == [[names[k] for k in row] for row in want]
    assert all(list(s.probabilities) == sorted(s.probabilities, reverse=True) for s in found)


def test_on_the_test_split_the_sets_reach_what_the_evaluation_measured(evaluated_run, tmp_path, capsys):
    run, _ = evaluated_run
    measured = json.loads((run / EVALUATION_FILE).read_text())["test"]
    output = tmp_path / "thr.jsonl"
    assert predict(run, "--split", "test", "--output", output, "--sets", "0.9") == 0  # THR by default
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert all(isinstance(row["set"], list) and row["set_size"] == len(row["set"]) for row in rows)
    coverage = sum(row["label"] in row["set"] for row in rows) / len(rows)
    assert 100.0 * coverage == pytest.approx(measured["conformal_thr_coverage"], abs=1e-10)  # in percent
    size = sum(row["set_size"] for row in rows) / len(rows)
    assert size == pytest.approx(measured["conformal_thr_set_size"], abs=1e-12)
    err = capsys.readouterr().err
    figure = f"{100 * coverage:.2f} %"
    assert "prediction sets: THR at level 0.9, calibrated on the run's 300 dev examples" in err
    assert f"on the run's test split these sets held the label for {figure}" in err
    assert f"sets holding the inputs' own labels: {figure}" in err
    # APS is not randomised here (evaluation.json's is): its figure is of these sets, measured.
    assert (
        predict(
            run, "--split", "test", "--output", tmp_path / "aps.csv", "--sets", 0.9, "--set-method", "aps"
        )
        == 0
    )
    rows = read_output(tmp_path / "aps.csv")
    coverage = sum(row["label"] in row["set"].split("|") for row in rows) / len(rows)
    assert f"these sets held the label for {100 * coverage:.2f} %" in capsys.readouterr().err
    # Another level: no figure of the test split, which was measured at 0.9 only.
    assert predict(run, "--split", "test", "--output", tmp_path / "95.csv", "--sets", 0.95) == 0
    err = capsys.readouterr().err
    assert "held the label for" not in err and "measured at level 0.9 only" in err


def test_a_run_never_evaluated_computes_its_calibration_once_and_records_it(small_config, tmp_path):
    run, _ = train_digits_run(small_config)
    assert not (run / CONFORMAL_FILE).exists()
    assert predict(run, "--split", "test", "--output", tmp_path / "first.csv", "--sets", 0.9) == 0
    computed, _ = load_safetensors(run / CONFORMAL_FILE)
    assert sorted(computed) == ["aps", "raps", "thr"] and computed["thr"].dtype == torch.float64
    assert len(computed["thr"]) == 300 and bool((computed["thr"].diff() >= 0).all())
    evaluate_run(run)  # computes the same scores anew
    evaluated, _ = load_safetensors(run / CONFORMAL_FILE)
    assert all(torch.equal(computed[m], evaluated[m]) for m in computed)
    # A record older than the file (evaluated before it was written): evaluate writes it.
    (run / CONFORMAL_FILE).unlink()
    evaluate_run(run)
    assert (run / CONFORMAL_FILE).is_file()
    # The last check: calibrated on its own scores, never recorded over the selected check's.
    written = (run / CONFORMAL_FILE).stat().st_mtime_ns
    last = tmp_path / "last.csv"
    assert predict(run, "--split", "test", "--output", last, "--sets", 0.9, "--checkpoint", "last") == 0
    assert (run / CONFORMAL_FILE).stat().st_mtime_ns == written
    predictor = labelemb.load(run, checkpoint="last")
    data = load_data("digits")
    dev_logits = predictor.logits(data.dev)
    scale = predictor.temperature or 1.0
    threshold = calibrate_threshold(dev_logits, data.dev.labels, 0.9, "thr", temperature=scale)
    members = prediction_sets(predictor.logits(data.test), threshold, "thr", temperature=scale)
    assert [int(row["set_size"]) for row in read_output(last)] == members.sum(-1).tolist()


def test_a_bundle_serves_the_same_sets_without_the_data(evaluated_run, tmp_path, capsys):
    run, _ = evaluated_run
    bundle = tmp_path / "bundle"
    assert main(["export", str(run), "--output", str(bundle)]) == 0
    assert json.loads((bundle / "bundle.json").read_text())["conformal"] == CONFORMAL_FILE
    capsys.readouterr()
    for place, output in ((run, tmp_path / "run.csv"), (bundle, tmp_path / "bundle.csv")):
        assert (
            predict(place, "--split", "test", "--output", output, "--sets", 0.8, "--set-method", "raps") == 0
        )
    assert (tmp_path / "run.csv").read_text() == (tmp_path / "bundle.csv").read_text()
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("prediction sets:")]
    assert len(notes) == 2 and notes[0] == notes[1]
    inputs = load_data("digits").test.inputs[:20]
    assert labelemb.load(bundle).predict_sets(inputs, 0.9) == labelemb.load(run).predict_sets(inputs, 0.9)


def _damage(bundle, change):
    """A copy of ``bundle`` whose calibration file's tensors and metadata ``change`` rewrites."""
    tensors, metadata = load_safetensors(bundle / CONFORMAL_FILE)
    change(tensors, metadata)
    save_safetensors(bundle / CONFORMAL_FILE, tensors, metadata)


def _with_record(**values):
    def change(tensors, metadata):
        record = json.loads(metadata["labelemb"])
        metadata["labelemb"] = json.dumps({**record, **values})

    return change


def test_a_damaged_calibration_in_a_bundle_is_refused_in_one_line(evaluated_run, tmp_path, capsys):
    run, _ = evaluated_run
    original = tmp_path / "bundle"
    assert main(["export", str(run), "--output", str(original)]) == 0
    capsys.readouterr()
    changes = {
        "truncated": (lambda t, m: None, "cannot read"),
        "unsorted": (
            lambda t, m: t.update(aps=t["aps"].flip(0).contiguous()),
            "its aps scores are not sorted",
        ),
        "cut short": (
            lambda t, m: t.update(thr=t["thr"][:-5].clone()),
            "its thr scores are 295, not one per dev",
        ),
        "single": (lambda t, m: t.update(raps=t["raps"].float()), "its raps scores are torch.float32"),
        "no record": (lambda t, m: m.clear(), "does not say what its scores were computed from"),
        "other step": (_with_record(step=1), "is not of the bundle's weights (computed at step 1"),
        "other weights": (_with_record(weights="0" * 64), "computed with other weights"),
    }
    for name, (change, message) in changes.items():
        bundle = tmp_path / name
        shutil.copytree(original, bundle)
        _damage(bundle, change)
        if name == "truncated":
            data = (bundle / CONFORMAL_FILE).read_bytes()
            (bundle / CONFORMAL_FILE).write_bytes(data[: len(data) // 2])
        err = refused(capsys, bundle, "--split", "test", "--output", tmp_path / "o.csv", "--sets", 0.9)
        assert message in err and "export it again" in err, name
    # A file outside the bundle is never read.
    outside = tmp_path / "outside"
    shutil.copytree(original, outside)
    description = json.loads((outside / "bundle.json").read_text())
    (outside / "bundle.json").write_text(
        json.dumps({**description, "conformal": "../bundle/conformal.safetensors"})
    )
    err = refused(capsys, outside, "--split", "test", "--output", tmp_path / "o.csv")
    assert "lies outside the bundle" in err
    # A bundle written before the file (no key) is read; it serves no sets, and says what to do.
    older = tmp_path / "older"
    shutil.copytree(original, older)
    description.pop("conformal")
    (older / "bundle.json").write_text(json.dumps(description))
    (older / CONFORMAL_FILE).unlink()
    assert predict(older, "--split", "test", "--output", tmp_path / "plain.csv") == 0
    capsys.readouterr()
    err = refused(capsys, older, "--split", "test", "--output", tmp_path / "o.csv", "--sets", 0.9)
    assert "fit no conformal threshold: the bundle holds no conformal scores" in err
    assert "labelemb evaluate RUN" in err


def test_every_refusal_of_sets_is_one_line(small_config, tmp_path, capsys):
    run, summary = train_digits_run(small_config)
    out = tmp_path / "o.csv"
    for level in ("1.5", "0", "1"):
        err = refused(capsys, run, "--split", "test", "--output", out, "--sets", level)
        assert f"a conformal level is a target coverage in (0, 1), such as 0.9; got {float(level)}" in err
    assert "--set-method needs --sets LEVEL" in refused(
        capsys, run, "--split", "test", "--output", out, "--set-method", "aps"
    )
    with pytest.raises(PredictError, match="unknown set method 'lac'"):
        labelemb.load(run).predict_sets(["x"], 0.9, "lac")
    with pytest.raises(PredictError, match="got 1.5"):
        labelemb.load(run).predict_sets(["x"], 1.5)
    # A class name with the separator: a CSV could not tell its sets apart.
    piped = tmp_path / "piped"
    shutil.copytree(run, piped)
    written = json.loads((piped / "summary.json").read_text())
    (piped / "summary.json").write_text(
        json.dumps({**written, "class_names": ["ze|ro", *summary["class_names"][1:]]})
    )
    assert "class 'ze|ro' holds '|'" in refused(
        capsys, piped, "--split", "test", "--output", out, "--sets", 0.9
    )
    # A run folder's damaged calibration: one line that says to delete it.
    (run / CONFORMAL_FILE).write_bytes(b"not safetensors")
    err = refused(capsys, run, "--split", "test", "--output", out, "--sets", 0.9)
    assert f"cannot read {run / CONFORMAL_FILE}" in err and "delete it" in err
    assert not out.exists()


def test_a_run_without_a_dev_split_or_class_scores_fits_no_threshold(tmp_path, capsys):
    (tmp_path / "texts").mkdir()
    texts, _ = train_text_run(tmp_path / "texts", dev_fraction=0)
    err = refused(
        capsys,
        texts,
        "--input",
        tmp_path / "texts" / "test.csv",
        "--output",
        tmp_path / "o.csv",
        "--sets",
        0.9,
    )
    assert "fit no conformal threshold: it has no dev split to calibrate on" in err
    pairs, _ = train_pair_run(tmp_path)
    err = refused(
        capsys, pairs, "--input", tmp_path / "test.en", "--output", tmp_path / "o.csv", "--sets", 0.9
    )
    assert "is a sequence-to-sequence run: it has no class scores, so no prediction sets" in err
