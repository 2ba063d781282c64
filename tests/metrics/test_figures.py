"""Every figure declared once (labelemb.metrics.figures): every key the metrics functions and a
check write is declared, with its unit (a share in percent, in files and tables alike; an old
evaluation.json's fractions read in percent); the one producer of a split's figures
(labelemb.metrics.split) gives the numbers the check's dev figures and shift.json always had."""

from __future__ import annotations

import json

import pytest
import torch

from labelemb.metrics import (
    conformal_figures,
    measure_calibration,
    ood_figures,
    recalibration_figures,
    scod_figures,
    selective_figures,
)
from labelemb.metrics.figures import (
    DECLARED,
    SPLIT_FIGURES,
    Figure,
    declare,
    evaluation_in_percent,
    family,
    figure,
    figure_of,
    in_units,
    objectives,
)
from labelemb.metrics.recalibration import MAPS
from labelemb.metrics.scod import SCOD_CURVE
from labelemb.metrics.selective import RISK_CURVE, aurc, correct_predictions, max_softmax
from labelemb.metrics.split import split_figures
from labelemb.metrics.temperature import fit_and_measure
from labelemb.rundir import EVALUATION_FILE, RunDir
from labelemb.tasks.calibration import CALIBRATION_FIELDS, DEV_FIELDS, MAP_DEV_FIELDS


def logits_and_labels(rows: int = 120, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    logits = torch.randn(rows, classes, generator=generator) + 2.0 * torch.nn.functional.one_hot(
        labels, classes
    )
    return logits, labels


def test_every_key_the_metrics_write_is_declared():
    logits, labels = logits_and_labels()
    dev_logits, dev_labels = logits_and_labels(seed=1)
    out_logits, _ = logits_and_labels(60, seed=2)
    written = {
        **selective_figures(logits, labels, temperature=1.5, norm_p=2.0),
        **conformal_figures(dev_logits, dev_labels, logits, labels, temperature=1.5),
        **ood_figures(logits, out_logits),
        **scod_figures(logits, labels, out_logits),
        **recalibration_figures(dev_logits, dev_labels, logits, labels, ["vector"]),
        **measure_calibration(logits, labels).figures(),
    }
    record_keys = [*CALIBRATION_FIELDS, *DEV_FIELDS, *MAP_DEV_FIELDS, "test_error", "dev_error"]
    keys = [*written, *record_keys, *(f"selected_{key}" for key in record_keys), *SPLIT_FIGURES]
    bins = {"test_calibration", "test_calibration_scaled"}  # a reliability diagram, no figure
    undeclared = [key for key in keys if key.removeprefix("selected_") not in bins and figure_of(key) is None]
    assert not undeclared


def test_one_unit_convention_a_share_in_percent_in_files_and_tables():
    assert figure_of("dev_aurc").unit == "percent" and figure_of("selected_test_ece_scaled").name == "ece"
    assert figure("selective_msp_aurc").unit == "percent" and figure("recal_dirichlet_ece").unit == "percent"
    assert figure("conformal_aps_set_size").unit == "count" and figure("nll").unit == "nats"
    assert figure("selective_msp_aurc").cell(1.25) == "1.25"  # a table shows the stored value
    assert figure("ood_msp_auroc").direction == "higher" and figure("aurc").direction == "lower"
    assert figure("nll").cell(0.12345) == "0.123" and figure("ece").cell(None) == "-"
    assert {f.name for f in family("scod")} >= {"scod_msp_aurc", "scod_energy_augrc"}
    assert figure_of("test_seconds") is None
    with pytest.raises(KeyError, match="no figure 'nope' is declared"):
        figure("nope")
    assert all(isinstance(f, Figure) and f.name == name for name, f in DECLARED.items())


def test_every_share_a_metrics_function_records_is_in_percent():
    # Against the primitives (fractions, as torchmetrics): each declared share is 100 times one.
    logits, labels = logits_and_labels()
    dev_logits, dev_labels = logits_and_labels(seed=1)
    out_logits = torch.randn(60, 4, generator=torch.Generator().manual_seed(2))
    written = {
        **selective_figures(logits, labels, temperature=1.5, norm_p=2.0),
        **conformal_figures(dev_logits, dev_labels, logits, labels, 0.9),
        **ood_figures(logits, out_logits),
        **scod_figures(logits, labels, out_logits),
        **measure_calibration(logits, labels).figures(),
    }
    shares = {key: value for key, value in written.items() if figure_of(key).share}
    assert len(shares) > 40 and all(0.0 <= value <= 100.0 for value in shares.values())
    assert shares["conformal_level"] == 90.0
    assert shares["selective_msp_aurc"] == 100.0 * aurc(
        max_softmax(logits), correct_predictions(logits, labels)
    )
    assert 50.0 < shares["ood_msp_auroc"] <= 100.0  # a fraction would read as under 1 %
    assert [
        f.name for f in DECLARED.values() if f.unit not in ("percent", "nats", "brier", "count", "plain")
    ] == []


def test_one_function_records_each_figure_in_its_declared_unit():
    """in_units: a share (a fraction, as computed) times 100, every other unit as it is, a risk
    curve point by point; a figure at another operating point in its declared kind's unit."""
    fractions = {
        "selective_msp_aurc": 0.125,
        "conformal_aps_set_size": 1.5,
        "test_nll": 0.3,
        "selected_dev_ece_scaled": 0.02,
        "selective_pnorm_coverage_at_2_5": 0.25,
        "ood_energy_fpr99": 0.5,
        RISK_CURVE: [0.0, 0.25],
    }
    assert in_units(fractions) == {
        "selective_msp_aurc": 12.5,
        "conformal_aps_set_size": 1.5,
        "test_nll": 0.3,
        "selected_dev_ece_scaled": 100.0 * 0.02,
        "selective_pnorm_coverage_at_2_5": 25.0,
        "ood_energy_fpr99": 50.0,
        RISK_CURVE: [0.0, 25.0],
    }
    with pytest.raises(KeyError, match="'test_seconds' is no declared figure"):
        in_units({"test_seconds": 3.0})


def test_tune_s_objectives_are_the_figures_declared_as_objectives(monkeypatch):
    from labelemb.tuning import OBJECTIVES

    held = objectives()
    assert held["ece"] == "dev_ece_scaled" and held["nll"] == "dev_nll" and held["aurc"] == "dev_aurc"
    assert set(held.values()) <= set(DEV_FIELDS) | set(MAP_DEV_FIELDS)  # a check records each on dev
    assert {key for key in held if key.startswith("ece_")} == {f"ece_{name}" for name in MAPS}
    assert OBJECTIVES == {"metric": None, **held}
    monkeypatch.setattr("labelemb.metrics.figures.DECLARED", dict(DECLARED))  # undone after the test
    declare(Figure("brier", "calibration", "Brier", "brier", objective="scaled"))
    assert objectives()["brier"] == "dev_brier_scaled"


def test_an_evaluation_of_an_old_format_reads_in_percent(tmp_path):
    # evaluation.json before format 3 stored its selective, conformal, OOD and SCOD shares as fractions.
    old = {
        "format": 2,
        "selected_step": 7,
        "test": {
            "selective_msp_aurc": 0.0125,
            "selective_pnorm_p": 3.0,
            "conformal_level": 0.9,
            "conformal_aps_coverage": 0.91,
            "conformal_aps_set_size": 2.5,
            "recal_vector_ece": 1.5,  # percent already
            RISK_CURVE: [0.5, 0.25],
        },
        "ood": {
            "m": {
                "examples": 9,
                "figures": {"ood_msp_auroc": 0.875, "scod_msp_augrc": 0.25},
                SCOD_CURVE: [1.0],
            }
        },
    }
    (tmp_path / EVALUATION_FILE).write_text(json.dumps(old))
    read = RunDir(tmp_path).read_evaluation()
    assert read["test"] == {
        "selective_msp_aurc": 1.25,
        "selective_pnorm_p": 3.0,
        "conformal_level": 90.0,
        "conformal_aps_coverage": 91.0,
        "conformal_aps_set_size": 2.5,
        "recal_vector_ece": 1.5,
        RISK_CURVE: [50.0, 25.0],
    }
    assert read["ood"]["m"] == {
        "examples": 9,
        "figures": {"ood_msp_auroc": 87.5, "scod_msp_augrc": 25.0},
        SCOD_CURVE: [100.0],
    }
    assert read["format"] == 2 and read["selected_step"] == 7  # `labelemb evaluate` computes it anew
    assert evaluation_in_percent({**old, "format": 3}) == {**old, "format": 3}  # today's: as it is
    assert json.loads((tmp_path / EVALUATION_FILE).read_text()) == old  # the file is left as it was


def test_the_split_producer_gives_shift_json_figures_as_before():
    logits, labels = logits_and_labels()
    temperature = 1.7
    _, figures = split_figures(logits, labels, temperature)
    raw, scaled = measure_calibration(logits, labels), measure_calibration(logits / temperature, labels)
    correct = correct_predictions(logits, labels)
    assert figures == {  # evaluation/shift.py's figures before the producer, digit for digit
        "error": 100.0 * (1.0 - correct.double().mean().item()),
        "ece": raw.ece,
        "ece_scaled": scaled.ece,
        "nll": raw.nll,
        "nll_scaled": scaled.nll,
        "aurc": 100.0 * aurc(max_softmax(logits).numpy(), correct.numpy()),
    }
    assert list(figures) == list(SPLIT_FIGURES)
    assert split_figures(logits, labels, None)[1]["ece_scaled"] == raw.ece


def test_the_split_producer_gives_the_check_s_dev_figures_as_before():
    logits, labels = logits_and_labels(seed=3)
    temperature, figures = split_figures(logits, labels, fit=True)
    fit = fit_and_measure(logits, labels)
    assert temperature == fit.temperature
    assert figures["ece"] == fit.raw.ece and figures["nll"] == fit.raw.nll
    assert figures["ece_scaled"] == fit.scaled.ece and figures["nll_scaled"] == fit.scaled.nll
    assert figures["aurc"] == 100.0 * aurc(max_softmax(logits), correct_predictions(logits, labels))
    diverged = logits.clone()
    diverged[0, 0] = float("nan")
    assert split_figures(diverged, labels, fit=True) is None
