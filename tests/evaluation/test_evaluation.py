"""A finished run judged beyond its error (labelemb.evaluation.run, labelemb evaluate): the
figures of its selected weights against the metrics computed here from its own logits, the record
kept while it fits and computed anew when it does not, the OOD sets a config names (a data set,
a file, texts one a line), one-line refusals, and the comparison's tables."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch
from helpers.predict_helpers import WORDS, train_digits_run, train_text_run

from labelemb import load
from labelemb.analysis.beyond_error import rank_changes
from labelemb.cli import main
from labelemb.config import OodSetConfig
from labelemb.data import load as load_data
from labelemb.evaluation import run as evaluation
from labelemb.evaluation.run import evaluate_run
from labelemb.experiment import write_comparison
from labelemb.metrics.conformal import conformal_figures
from labelemb.metrics.ood import ood_figures
from labelemb.metrics.recalibration import recalibration_figures
from labelemb.metrics.scod import SCOD_CURVE, scod_figures, scod_risk_curve
from labelemb.metrics.selective import RISK_CURVE, choose_norm_p, msp_risk_curve, selective_figures
from labelemb.predict import PredictError
from labelemb.rundir import EVALUATION_FILE, RunDir
from labelemb.training import ConfigError, build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

PATCHES = OodSetConfig(data="patches")


def test_the_patches_are_grey_8x8_images_the_same_every_time():
    first, again = load_data("patches"), load_data("patches")
    assert first.class_names == ["photo"] and (len(first.train), len(first.dev), len(first.test)) == (
        600,
        300,
        300,
    )
    assert first.test.inputs.shape == (300, 1, 8, 8) and first.test.inputs.dtype == torch.float32
    assert 0.0 <= float(first.test.inputs.min()) and float(first.test.inputs.max()) <= 1.0
    assert float(first.test.inputs.std()) > 0.05  # photographs, not a flat grey
    assert torch.equal(first.test.inputs, again.test.inputs)


def test_the_figures_are_those_of_the_selected_weights_logits(small_config):
    run_dir, summary = train_digits_run(small_config)
    assert summary["selected_step"] != summary["steps"]  # the selected check is not the last
    record = evaluate_run(run_dir, ood=[PATCHES])
    assert record["selected_step"] == summary["selected_step"]
    # Independently: the selected weights' logits (labelemb.load) and the metrics of them.
    predictor = load(run_dir)
    data = load_data("digits")
    test_logits, dev_logits = predictor.logits(data.test), predictor.logits(data.dev)
    # The very logits the run's own selected check measured its test error on.
    wrong = (test_logits.argmax(-1) != data.test.labels).double().mean().item()
    assert 100 * wrong == pytest.approx(summary["selected_test_error"], abs=1e-9)
    p = choose_norm_p(dev_logits, data.dev.labels)
    want = selective_figures(test_logits, data.test.labels, temperature=predictor.temperature, norm_p=p)
    T = predictor.temperature
    want.update(
        conformal_figures(
            dev_logits,
            data.dev.labels,
            test_logits,
            data.test.labels,
            0.9,
            temperature=T,
            randomized=True,
            seed=0,
        )
    )
    want.update(msp_risk_curve(test_logits, data.test.labels))  # the curve the report draws
    # each post-hoc map fit on dev, judged on test
    want.update(recalibration_figures(dev_logits, data.dev.labels, test_logits, data.test.labels))
    assert {"recal_dirichlet_ece", "recal_isotonic_brier", "recal_binning_error"} <= set(want)
    assert set(record["test"]) == set(want) and "conformal_aps_set_size" in want
    assert len(record["test"][RISK_CURVE]) == 101
    for key, value in want.items():
        assert record["test"][key] == pytest.approx(value, abs=1e-12), key
    patches = load_data("patches").test.inputs
    out_logits = predictor.logits(patches)
    want_ood = ood_figures(test_logits, out_logits)
    # SCOD: the test split and the patches ranked together, an accepted patch counting as an error
    want_ood.update(scod_figures(test_logits, data.test.labels, out_logits))
    assert {"scod_msp_aurc", "scod_energy_augrc"} <= set(want_ood)
    assert record["ood"]["patches"]["figures"] == pytest.approx(want_ood, abs=1e-12)
    want_curve = scod_risk_curve(test_logits, data.test.labels, out_logits)[SCOD_CURVE]
    assert record["ood"]["patches"][SCOD_CURVE] == pytest.approx(want_curve, abs=1e-12)
    assert record["ood"]["patches"]["examples"] == 300
    assert json.loads((run_dir / EVALUATION_FILE).read_text()) == record


def test_a_record_that_fits_is_read_and_one_that_does_not_is_computed_anew(small_config, monkeypatch, caplog):
    run_dir, _ = train_digits_run(small_config)
    first = evaluate_run(run_dir)
    written = (run_dir / EVALUATION_FILE).stat().st_mtime_ns
    assert evaluate_run(run_dir) == first
    assert (run_dir / EVALUATION_FILE).stat().st_mtime_ns == written  # read, not written again
    # Another OOD set: added; the test figures are the same numbers.
    with_patches = evaluate_run(run_dir, ood=[PATCHES])
    assert "patches" in with_patches["ood"] and with_patches["test"] == first["test"]
    # Another code version: computed anew, and said.
    monkeypatch.setattr(evaluation, "code_version", lambda: "0.0.0+elsewhere")
    with caplog.at_level(logging.INFO, logger="labelemb.evaluation.run"):
        again = evaluate_run(run_dir)
    assert again["labelemb"] == "0.0.0+elsewhere" and "computed with another labelemb" in caplog.text
    assert again["test"] == first["test"]


def test_a_map_the_dev_split_cannot_fit_is_left_out_with_one_line(small_config, monkeypatch, caplog):
    run_dir, _ = train_digits_run(small_config)
    monkeypatch.setattr("labelemb.metrics.recalibration.BINS", 10**6)  # more bins than dev examples
    monkeypatch.setattr("labelemb.evaluation.run.EVALUATION_FORMAT", 99)  # not the record of before
    with caplog.at_level(logging.WARNING, logger="labelemb.evaluation.run"):
        record = evaluate_run(run_dir)
    assert "recal_binning_ece" not in record["test"] and "recal_isotonic_ece" in record["test"]
    lines = [r.getMessage() for r in caplog.records if "recalibration" in r.getMessage()]
    assert lines == [
        f"no binning recalibration: binning cannot be fit on {len(load_data('digits').dev)} dev examples: "
        "it needs at least 1000000, one a bin; use a larger dev split"
    ]


def test_an_old_record_is_computed_anew_with_the_maps(small_config):
    run_dir, _ = train_digits_run(small_config)
    record = evaluate_run(run_dir)
    before = {key: value for key, value in record["test"].items() if not key.startswith("recal_")}
    old = {**record, "format": 1, "test": before}
    (run_dir / EVALUATION_FILE).write_text(json.dumps(old))  # as labelemb evaluate found it before
    assert evaluate_run(run_dir)["test"] == record["test"]


def test_an_ood_set_that_does_not_fit_is_refused_in_one_line(small_config, tmp_path, mnist_dir):
    run_dir, _ = train_digits_run(small_config)
    with pytest.raises(
        PredictError, match=r"mnist's inputs are \(1, 28, 28\), but the network reads images of \(1, 8, 8\)"
    ):
        evaluate_run(run_dir, ood=[OodSetConfig(data="mnist")], data_dir=str(mnist_dir.parent))
    with pytest.raises(PredictError, match=r"ood set 'gone.csv': file gone.csv not found \(looked for"):
        evaluate_run(run_dir, ood=[OodSetConfig(path="gone.csv")])
    for problem in (str(error) for error in _refusals(run_dir)):
        assert "\n" not in problem


def _refusals(run_dir):
    for entry in (OodSetConfig(path="gone.csv"), OodSetConfig(data="patches", split="train", limit=1)):
        try:
            evaluate_run(run_dir, ood=[entry])
        except PredictError as error:
            yield error


def test_a_text_run_reads_its_ood_texts_one_a_line(tmp_path):
    run_dir, _ = train_text_run(tmp_path)
    other = tmp_path / "talks.en"  # a suffix no table has: one text a line
    other.write_text("\ufeffwe flew to the moon and back\nthe orchestra played all night\n", encoding="utf-8")
    record = evaluate_run(run_dir, ood=[OodSetConfig(path=str(other))])
    held = record["ood"]["talks.en"]
    assert held["examples"] == 2 and 0.0 <= held["figures"]["ood_msp_auroc"] <= 100.0
    # The byte-order mark is not part of the first text: the figures are those of the texts.
    texts = ["we flew to the moon and back", "the orchestra played all night"]
    predictor = load(run_dir)
    test_logits = predictor.logits(_test_texts(tmp_path))
    detection = {key: value for key, value in held["figures"].items() if key.startswith("ood_")}
    assert detection == pytest.approx(ood_figures(test_logits, predictor.logits(texts)), abs=1e-12)
    assert {"scod_msp_aurc", "scod_entropy_augrc"} <= set(held["figures"])  # SCOD, for texts too
    assert predictor.logits(texts).shape == (2, len(WORDS))


def _test_texts(folder):
    import csv

    with (folder / "test.csv").open(newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def test_config_errors_name_the_key_and_the_fix(small_config):
    with pytest.raises(ConfigError, match=r"'ood.0': an ood set names a data set \(data: mnist\) or a file"):
        small_config("ood=[{data: mnist, path: x.csv}]")
    with pytest.raises(ConfigError, match="two ood sets are called mnist: give each its own name"):
        small_config("ood=[{data: mnist}, {data: mnist}]")
    with pytest.raises(ConfigError, match=r"'ood.0.dat' does not exist; did you mean 'ood.data'\?"):
        small_config("ood=[{dat: mnist}]")
    with pytest.raises(
        ConfigError, match=r"unknown data set \(an ood set's data\) 'mnsit'; did you mean 'mnist'"
    ):
        small_config("ood=[{data: mnsit}]")
    # The sets judge a run: they are not what it is (a finished run is not trained again for them).
    assert small_config("ood=[{data: patches}]").comparable() == small_config().comparable()


def test_labelemb_evaluate_writes_each_runs_record_and_the_tables(small_config, tmp_path, capsys):
    output = tmp_path / "runs"
    for method in ("onehot", "label_smoothing"):
        for seed in (0, 1):
            train(small_config(f"method.name={method}", f"seed={seed}", output_dir=output))
    experiment = output / "small"
    assert main(["evaluate", str(experiment), "--ood", "patches", "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(f"{experiment}/")]
    # Each figure says which score it is of (the demo's table shows the MSP AUROC).
    pattern = r".*: AURC \(MSP\) [\d.]+ %, .*OOD patches: AUROC [\d.]+ % \(MSP\), [\d.]+ % \(energy\)"
    assert len(lines) == 4 and all(re.fullmatch(pattern, line) for line in lines), lines
    assert all(
        (folder.path / EVALUATION_FILE).is_file() for folder in map(RunDir, experiment.glob("*/seed*"))
    )
    table = (experiment / "comparison.md").read_text(encoding="utf-8")
    assert "Knowing when it is wrong" in table and "Out-of-distribution inputs: patches" in table
    # A run folder alone: its line, no table.
    one = experiment / "onehot" / "seed0"
    assert main(["evaluate", str(one), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"{one}: AURC ")


def test_runs_without_a_record_show_a_dash_and_are_never_judged_by_the_table(small_config, tmp_path):
    output = tmp_path / "runs"
    for method in ("onehot", "label_smoothing"):
        train(small_config(f"method.name={method}", output_dir=output))
    experiment = output / "small"
    assert "Knowing when it is wrong" not in write_comparison(experiment).to_markdown()  # no run has a record
    evaluate_run(experiment / "onehot" / "seed0")
    table = write_comparison(experiment).to_markdown()
    section = table[table.index("Knowing when it is wrong") :]
    row = next(line for line in section.splitlines() if line.startswith("| label_smoothing |"))
    assert row.count("| - ") >= 7  # its figures: none computed by the table itself


def test_the_rank_line_names_the_methods_that_aurc_moves():
    rows = [
        {"method": "onehot", "selected_mean": 10.0, "beyond_aurc_mean": 5.0},
        {"method": "label_smoothing", "selected_mean": 9.0, "beyond_aurc_mean": 6.0},
        {"method": "lcm", "selected_mean": 11.0, "beyond_aurc_mean": 7.0},
    ]
    assert rank_changes(rows) == (
        "Ranked by AURC rather than by error (1 = best), these methods move: onehot (2 -> 1), "
        "label_smoothing (1 -> 2)."
    )
    rows[1]["beyond_aurc_mean"] = 4.0
    assert rank_changes(rows) == "By AURC the methods rank as by error."
    rows[2]["selected_mean"] = 9.0  # a tie shares the better rank: lcm 1 by error, 3 by AURC
    assert "lcm (1 -> 3)" in rank_changes(rows)


def test_a_sequence_run_has_no_ood_sets_and_a_text_run_names_none_by_data_set():
    sequence = {"data": {"name": "ddtp-summarize"}, "model": {"name": "seq2seq"}, "ood": [{"path": "a.txt"}]}
    with pytest.raises(ConfigError, match="ood sets judge a classifier"):
        build_config(sequence)
    texts = {
        "data": {"name": "files", "files": {"train": "t.csv", "test": "t.csv"}},
        "model": {"name": "bag_of_words"},
        "ood": [{"data": "patches"}],
    }
    with pytest.raises(ConfigError, match=r"ood set 'patches': a data set by name serves image runs"):
        build_config(texts)


def test_a_frozen_backbones_run_is_scored_on_its_cached_features_as_through_the_backbone(
    small_config, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABELEMB_CACHE", str(cache))
    config = small_config(
        "model.freeze=true", "model.dense=16", "method.name=onehot", "ood=[{data: patches}]"
    )
    train(config)
    record = evaluate_run(config.run_dir())
    assert len(list((cache / "features").glob("*.safetensors"))) == 4  # train, dev, test, the patches
    # The same figures as the whole network (backbone included) gives on the raw images.
    predictor = load(config.run_dir())
    data = load_data("digits")
    test_logits = predictor.logits(data.test)
    out_logits = predictor.logits(load_data("patches").test.inputs)
    want = {**ood_figures(test_logits, out_logits), **scod_figures(test_logits, data.test.labels, out_logits)}
    assert record["ood"]["patches"]["figures"] == pytest.approx(want, abs=1e-6)
    assert record["test"]["selective_msp_aurc"] == pytest.approx(
        selective_figures(test_logits, data.test.labels)["selective_msp_aurc"], abs=1e-6
    )


def test_labelemb_evaluate_refuses_in_one_line(small_config, capsys, mnist_dir, monkeypatch):
    run_dir, _ = train_digits_run(small_config)
    monkeypatch.setenv("LABELEMB_DATA", str(mnist_dir.parent))
    cases = {
        ("--ood", "mnist"): "mnist's inputs are (1, 28, 28), but the network reads images of (1, 8, 8)",
        ("--ood", "missing.csv"): "ood set 'missing.csv': file missing.csv not found (looked for",
        ("--ood", "mnst"): "ood set 'mnst': unknown data set 'mnst'; did you mean 'mnist'?",
    }
    for options, message in cases.items():
        assert main(["evaluate", str(run_dir), *options, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("labelemb evaluate: error: ") and message in err, err
    assert main(["evaluate", str(run_dir.parent / "nowhere"), "--no-progress"]) == 2
    assert "holds no finished run" in capsys.readouterr().err


def test_a_run_that_cannot_be_evaluated_after_training_still_stands_and_the_command_fails(
    small_config, tmp_path, capsys
):
    wrong = tmp_path / "wrong.npz"  # found before training, but no images of the run's shape
    np.savez(wrong, x=np.zeros((4, 3), dtype=np.float32))
    config = small_config(f"ood=[{{path: {wrong}}}]", output_dir=tmp_path / "runs")
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
    assert main(["train", "--config", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{config.run_dir()}: not evaluated: ood set 'wrong.npz' ({wrong})" in err
    assert f"labelemb evaluate {config.run_dir()}" in err
    assert RunDir(config.run_dir()).is_finished() and not (config.run_dir() / EVALUATION_FILE).exists()


def test_an_ood_file_that_is_not_there_is_refused_before_anything_trains(small_config, tmp_path, capsys):
    config = small_config("ood=[{path: gone.csv}]", output_dir=tmp_path / "runs")
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
    assert main(["train", "--config", str(path), "--no-progress"]) == 2
    assert "ood set 'gone.csv': file gone.csv not found" in capsys.readouterr().err
    assert not config.run_dir().exists()


def test_other_data_under_the_same_file_names_is_evaluated_anew(tmp_path, caplog):
    from helpers.predict_helpers import text_table

    run_dir, _ = train_text_run(tmp_path)
    first = evaluate_run(run_dir)
    text_table(tmp_path / "test.csv", 30, 7)  # the same names, other texts
    with caplog.at_level(logging.INFO, logger="labelemb.evaluation.run"):
        again = evaluate_run(run_dir)
    assert again["data"] != first["data"] and "computed with another data" in caplog.text
