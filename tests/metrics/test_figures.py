"""Every figure declared once (labelemb.metrics.figures): every key the metrics functions and a
check write is declared, with the unit it is stored in; the one producer of a split's figures
(labelemb.metrics.split) gives the numbers the check's dev figures and shift.json always had."""

from __future__ import annotations

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
from labelemb.metrics.figures import DECLARED, SPLIT_FIGURES, Figure, family, figure, figure_of
from labelemb.metrics.selective import aurc, correct_predictions, max_softmax
from labelemb.metrics.split import split_figures
from labelemb.metrics.temperature import fit_and_measure
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


def test_each_key_says_its_stored_unit_and_tables_show_percent():
    # The records, summaries and shift.json keep shares in percent; evaluation.json in fractions.
    assert figure_of("dev_aurc").stored == "percent" and figure_of("selected_test_ece_scaled").name == "ece"
    assert figure("selective_msp_aurc").stored == "fraction"
    assert figure("recal_dirichlet_ece").stored == "percent"  # as Calibration gives it
    assert figure("selective_msp_aurc").shown(0.0125) == 100.0 * 0.0125
    assert figure_of("dev_aurc").shown(1.25) == 1.25
    assert figure("conformal_aps_set_size").shown(2.5) == 2.5
    assert figure("ood_msp_auroc").direction == "higher" and figure("aurc").direction == "lower"
    assert figure("nll").cell(0.12345) == "0.123" and figure("ece").cell(None) == "-"
    assert {f.name for f in family("scod")} >= {"scod_msp_aurc", "scod_energy_augrc"}
    assert figure_of("test_seconds") is None
    with pytest.raises(KeyError, match="no figure 'nope' is declared"):
        figure("nope")
    assert all(isinstance(f, Figure) and f.name == name for name, f in DECLARED.items())


def test_the_split_producer_gives_shift_json_figures_as_before():
    logits, labels = logits_and_labels()
    temperature = 1.7
    _, figures = split_figures(logits, labels, temperature)
    raw, scaled = measure_calibration(logits, labels), measure_calibration(logits / temperature, labels)
    correct = correct_predictions(logits, labels)
    assert figures == {  # predict/shift.py's figures before the producer, digit for digit
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
