"""Only a check that can still become the selected one pays for every calibration figure.

With ``selection: best_dev`` the summary keeps the figures of the first check that reaches the best
dev score; a check whose dev score does not beat every earlier one can never be that check, so it
records the raw top-probability figures only (ECE, MCE, NLL and the bins, the per-check curve)
and leaves out AdaECE, classwise ECE, Brier, the temperature fit and everything scaled, and the
dev split's calibration (docs/benchmarks.md has the cost of both kinds of check on the MNIST MLP).
"""

from __future__ import annotations

import json

import pytest
import torch

from labelemb.tasks import Classification, always_selectable
from labelemb.tasks.calibration import CALIBRATION_FIELDS, DEV_FIELDS, ScaledCalibration, calibration_at_check
from labelemb.training import train
from labelemb.training.results import selectable_check, selected_record

pytestmark = pytest.mark.usefixtures("one_thread")

#: What a check that cannot be selected still records of the test split's calibration.
TOP_FIELDS = {"test_ece", "test_mce", "test_nll", "test_calibration"}


def checks(values: list[float], metric: str = "dev_error") -> list[dict]:
    return [{metric: value, "step": step} for step, value in enumerate(values)]


def test_with_best_dev_only_a_check_that_beats_every_earlier_one_can_be_selected():
    task = Classification()
    earlier = checks([5.0, 3.0, 4.0])
    can_be_selected = selectable_check(earlier, task, "best_dev")
    assert can_be_selected({"dev_error": 2.9})
    assert not can_be_selected({"dev_error": 3.0}) and not can_be_selected({"dev_error": 4.5})
    # A later check that ties the best is not the one selected: the first to reach it is.
    assert selected_record([*earlier, {"dev_error": 3.0, "step": 3}], task, "best_dev")["step"] == 1
    assert can_be_selected({})  # a record without the metric: nothing to judge it by


def test_the_first_check_the_final_selection_and_higher_is_better():
    task = Classification()
    assert selectable_check([], task, "best_dev") is always_selectable
    assert selectable_check(checks([5.0, 3.0]), task, "final") is always_selectable
    by_f1 = Classification(selection_metric="dev_macro_f1", lower_is_better=False)
    can_be_selected = selectable_check(checks([0.5, 0.7], "dev_macro_f1"), by_f1, "best_dev")
    assert can_be_selected({"dev_macro_f1": 0.71}) and not can_be_selected({"dev_macro_f1": 0.7})


def test_a_check_that_cannot_be_selected_records_the_same_raw_figures_and_no_more():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(700, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (700,), generator=generator)
    full, light = calibration_at_check(1.7, True), calibration_at_check(1.7, False)
    for start in range(0, 700, 300):  # batches of unequal size, as a split's last one
        full.add(logits[start : start + 300], labels[start : start + 300])
        light.add(logits[start : start + 300], labels[start : start + 300])
    everything, top = full.record("test"), light.record("test")
    assert set(everything) == set(CALIBRATION_FIELDS)
    assert set(top) == TOP_FIELDS
    assert {key: everything[key] for key in TOP_FIELDS} == top
    assert isinstance(full, ScaledCalibration) and full.temperature == 1.7 and light.temperature is None


def test_a_run_records_every_figure_where_a_check_can_be_selected(small_config, digits):
    # lr 0.05 over 8 epochs: dev error falls, rises at steps 60 and 72, falls again (digits, seed 0).
    config = small_config("train.epochs=8", "train.lr=0.05")
    summary = train(config, dataset=digits)
    records = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    best = float("inf")
    light = 0
    for record in records:
        if record["dev_error"] < best:
            best = record["dev_error"]
            assert set(CALIBRATION_FIELDS) | set(DEV_FIELDS) <= set(record), record["step"]
        else:
            light += 1
            assert TOP_FIELDS <= set(record)
            assert not (set(CALIBRATION_FIELDS) - TOP_FIELDS | set(DEV_FIELDS)) & set(record)
    assert light >= 1, "the run no longer has a check that fails to improve: choose another lr"
    selected = next(r for r in records if r["step"] == summary["selected_step"])
    for field in (*CALIBRATION_FIELDS, *DEV_FIELDS):
        assert summary[f"selected_{field}"] == selected[field]
