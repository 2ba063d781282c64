"""Temperature scaling and the calibration figures beside ECE: MCE, AdaECE, classwise ECE, Brier,
each against torchmetrics or a hand computation (ties, empty bins), and a run's raw and scaled
records (the temperature fit on dev, never on test)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from helpers.repo_paths import DOCS
from scipy.optimize import minimize_scalar
from torchmetrics.classification import MulticlassCalibrationError

from labelemb.data.base import as_float_images
from labelemb.metrics import CalibrationSums, adaptive_ece, calibration, fit_temperature, measure_calibration
from labelemb.tasks import Predictor
from labelemb.tasks.calibration import (
    CALIBRATION_FIELDS,
    DEV_FIELDS,
    ScaledCalibration,
    calibration_record,
    dev_calibration,
)
from labelemb.training import build_network, train

pytestmark = pytest.mark.usefixtures("one_thread")


def random_predictions(n: int = 500, classes: int = 10, seed: int = 0, scale: float = 3.0):
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=generator)
    # Make a share of them right, so the figures are not all about wrong predictions.
    right = torch.rand(n, generator=generator) < 0.6
    labels[right] = logits[right].argmax(-1)
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_and_mce_equal_torchmetrics_l1_and_max_norms(seed):
    logits, labels = random_predictions(seed=seed)
    ours = measure_calibration(logits, labels)
    probabilities = torch.softmax(logits, -1)
    for norm, value in (("l1", ours.ece), ("max", ours.mce)):
        metric = MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)
        theirs = float(metric(probabilities, labels)) * 100
        assert value == pytest.approx(theirs, abs=1e-4), norm


def test_adaptive_ece_by_hand_with_ties_and_more_bins_than_a_bin_can_fill():
    confidence = torch.tensor([0.9, 0.3, 0.6, 0.6, 0.6, 0.8])
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    # Sorted: 0.3 (0) | 0.6 (1) 0.6 (0) 0.6 (1) | 0.8 (1) 0.9 (1). Three bins of two by rank;
    # the three 0.6 ranks 1-3 all go to the bin of the first of them (rank 1 -> bin 0).
    # Bin 0: 0.3, 0.6, 0.6, 0.6: |2 - 2.1| = 0.1; bin 1: empty; bin 2: 0.8, 0.9: |2 - 1.7| = 0.3.
    assert adaptive_ece(confidence, correct, bins=3) == pytest.approx((0.1 + 0.3) / 6)
    # The order of the ties does not matter.
    shuffled = torch.tensor([5, 3, 0, 4, 2, 1])
    assert adaptive_ece(confidence[shuffled], correct[shuffled], bins=3) == pytest.approx((0.1 + 0.3) / 6)
    # Two examples in 15 bins: each its own bin, the others empty.
    assert adaptive_ece(torch.tensor([0.5, 0.9]), torch.tensor([1.0, 0.0]), bins=15) == pytest.approx(
        (0.5 + 0.9) / 2
    )


def mukhoti_adaptive_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """AdaECE binned as Mukhoti et al.'s focal_calibration code bins it (written here from their
    description): edges interpolated over the sorted confidences, each bin (lower, upper]."""
    count = len(confidence)
    edges = np.interp(np.linspace(0, count, bins + 1), np.arange(count), np.sort(confidence))
    total = 0.0
    for lower, upper in zip(edges[:-1], edges[1:]):
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            total += abs(confidence[inside].mean() - correct[inside].mean()) * inside.mean()
    return float(total)


def test_adaptive_ece_cuts_by_rank_where_mukhotis_code_interpolates_edges():
    """docs/cli.md says how our equal-mass bins differ from Mukhoti et al.'s code, and by how much."""
    # By hand, two bins: ours {0.2, 0.4} {0.6, 0.8}: (|1 - 0.6| + |2 - 1.4|) / 4 = 0.25; their edges
    # 0.2, 0.6, 0.8 give (0.2, 0.6] = {0.4, 0.6} and (0.6, 0.8] = {0.8}: 0.2 falls in no bin.
    confidence, correct = np.array([0.2, 0.4, 0.6, 0.8]), np.array([1.0, 0.0, 1.0, 1.0])
    ours = adaptive_ece(torch.from_numpy(confidence), torch.from_numpy(correct), bins=2)
    assert ours == pytest.approx(0.25)
    assert mukhoti_adaptive_ece(confidence, correct, bins=2) == pytest.approx((0.0 + 0.2 * 1) / 4)
    # On 10,000 predictions of a 10-class classifier they agree closely (60 draws, as the docs say).
    differences = []
    for seed in range(20):
        for scale in (1.0, 3.0, 6.0):
            logits, labels = random_predictions(n=10_000, seed=seed, scale=scale)
            top, predictions = torch.softmax(logits, -1).max(-1)
            right = (predictions == labels).double()
            theirs = mukhoti_adaptive_ece(top.numpy(), right.numpy())
            differences.append(abs(adaptive_ece(top, right) - theirs))
    assert max(differences) <= 2.1e-4, max(differences)
    text = " ".join((DOCS / "cli.md").read_text(encoding="utf-8").split())
    assert "np.interp" in text and "(lower, upper]" in text  # the difference is said


def test_adaptive_ece_is_equal_mass_bins_of_the_sorted_confidences():
    logits, labels = random_predictions(n=600, seed=4)
    probabilities = torch.softmax(logits, -1)
    confidence, predictions = probabilities.max(-1)
    correct = (predictions == labels).double()
    order = torch.argsort(confidence)
    gaps = [
        abs(float(correct[chunk].sum() - confidence[chunk].sum())) for chunk in order.tensor_split(15)
    ]  # no ties among continuous confidences: 15 runs of 40
    assert measure_calibration(logits, labels).adaece == pytest.approx(100 * sum(gaps) / 600, rel=1e-9)


def test_classwise_ece_and_brier_by_hand():
    logits = torch.log(
        torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25]], dtype=torch.float64)
    )
    labels = torch.tensor([0, 0, 2])
    result = measure_calibration(logits, labels, bins=2)
    # Class 0: p 0.7, 0.1, 0.5 -> bins (0, .5]: {0.1, 0.5}, labelled 0: 1 of 2 -> |1 - 0.6| = 0.4;
    #          (.5, 1]: {0.7}, labelled 0 -> |1 - 0.7| = 0.3.                    sum 0.7 / 3
    # Class 1: p 0.2, 0.8, 0.25 -> (0, .5]: {0.2, 0.25}, none labelled 1 -> 0.45;
    #          (.5, 1]: {0.8}, not labelled 1 -> 0.8.                             sum 1.25 / 3
    # Class 2: p 0.1, 0.1, 0.25 -> (0, .5]: all three, one labelled 2 -> |1 - 0.45| = 0.55. 0.55 / 3
    assert result.classwise_ece == pytest.approx(100 * (0.7 + 1.25 + 0.55) / 3 / 3)
    brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.9**2 + 0.8**2 + 0.1**2) + (0.5**2 + 0.25**2 + 0.75**2)) / 3
    assert result.brier == pytest.approx(brier)


def test_batch_by_batch_equals_all_at_once_for_every_figure():
    logits, labels = random_predictions(n=300, seed=5)
    whole = measure_calibration(logits, labels)
    sums = CalibrationSums()
    for chunk, chunk_labels in zip(logits.split(64), labels.split(64)):
        sums.add(chunk, chunk_labels)
    batched = sums.result()
    for figure in ("ece", "mce", "adaece", "classwise_ece", "nll", "brier"):
        assert getattr(batched, figure) == pytest.approx(getattr(whole, figure), rel=1e-12), figure


def test_a_split_larger_than_a_block_added_in_inference_mode_is_summed_after_it(monkeypatch):
    # The first blocks are summed inside the evaluation pass (inference mode), the rest when the
    # record is asked for, outside it: every figure as if summed at once.
    logits, labels = random_predictions(n=300, seed=12)
    monkeypatch.setattr(calibration, "BLOCK_LOGITS", 1000)
    sums = ScaledCalibration(1.5)
    with torch.inference_mode():
        for chunk, chunk_labels in zip(logits.split(70), labels.split(70)):
            sums.add(chunk, chunk_labels)
    record = sums.record("test")
    monkeypatch.setattr(calibration, "BLOCK_LOGITS", 1 << 20)
    whole = ScaledCalibration(1.5)
    whole.add(logits, labels)
    want = whole.record("test")
    assert record.keys() == want.keys()
    for key, value in want.items():
        assert record[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_predictions_with_a_non_finite_logit_have_no_figures_and_say_how_many():
    logits, labels = random_predictions(n=40, seed=13)
    logits[3, 2], logits[7, 0] = float("nan"), float("inf")
    sums = ScaledCalibration(1.5)
    sums.add(logits, labels)
    record = sums.record("test")
    assert record["test_non_finite"] == 2 and record["test_non_finite_scaled"] == 2
    assert not any(key in record for key in ("test_ece", "test_nll", "test_adaece", "test_ece_scaled"))
    assert record["test_calibration"]["counts"] == [0] * 15
    assert math.isnan(measure_calibration(logits, labels).ece)
    # Nothing to fit a temperature on: the dev figures are left out, and asked directly it is an error.
    assert dev_calibration(logits, labels) == (None, {})
    with pytest.raises(ValueError, match="non-finite logits"):
        fit_temperature(logits, labels)


def test_a_diverged_run_records_its_non_finite_checks_and_warns(small_config, digits, caplog):
    config = small_config("train.lr=1e38")  # the weights overflow to inf within the first epoch
    with caplog.at_level(logging.WARNING, logger="labelemb.training.results"):
        summary = train(config, dataset=digits)
    records = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert any(record.get("test_non_finite") for record in records)
    assert "diverged" in caplog.text and "smaller train.lr" in caplog.text
    assert summary["selected_test_error"] is not None


def test_the_fitted_temperature_minimises_the_nll_on_a_fine_grid():
    logits, labels = random_predictions(n=800, seed=6, scale=6.0)  # overconfident: T > 1
    temperature = fit_temperature(logits, labels)

    def nll(t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / t, labels))

    grid = np.exp(np.linspace(math.log(0.05), math.log(20), 4001))
    best = grid[np.argmin([nll(t) for t in grid])]
    assert temperature == pytest.approx(best, rel=2e-3) and temperature > 1
    assert nll(temperature) <= min(nll(t) for t in grid) + 1e-9
    # Scaling by it lowers the NLL it was fit on. A dev set predicted all right has no minimum:
    # T falls until the NLL is 0 to float64's precision, and never below the range's 0.01.
    assert nll(temperature) < nll(1.0)
    sure, sure_labels = torch.eye(4, dtype=torch.float64) * 3, torch.arange(4)
    low = fit_temperature(sure, sure_labels)
    assert 0.01 <= low < 0.1
    assert float(torch.nn.functional.cross_entropy(sure / low, sure_labels)) < 1e-30


@pytest.mark.parametrize("scale", [0.05, 0.5, 3.0, 20.0, 150.0])
def test_the_newton_fit_equals_scipy_s_bounded_search_over_log_t(scale):
    # Underconfident (T < 1) to overconfident (T near the range's top): an independent minimiser.
    logits, labels = random_predictions(n=600, seed=11, scale=scale)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels))

    bounds = (math.log(0.01), math.log(100.0))
    found = minimize_scalar(nll, bounds=bounds, method="bounded", options={"xatol": 1e-10})
    assert fit_temperature(logits, labels) == pytest.approx(math.exp(found.x), rel=1e-6)


def test_where_the_nll_has_no_minimum_the_range_s_bound_is_taken():
    margins = torch.eye(4, dtype=torch.float64) * 3
    assert fit_temperature(margins, torch.arange(4)) == 0.01  # all right: sharper is always better
    assert fit_temperature(margins, (torch.arange(4) + 1) % 4) == 100.0  # all wrong: softer is
    assert fit_temperature(torch.zeros(5, 3), torch.tensor([0, 1, 2, 0, 1])) == 1.0  # flat: T = 1


def test_scaled_figures_are_those_of_the_logits_divided_by_the_temperature():
    logits, labels = random_predictions(n=200, seed=7)
    calibration = ScaledCalibration(2.5)
    calibration.add(logits, labels)
    record = calibration.record("test")
    want = calibration_record(measure_calibration(logits / 2.5, labels), "test", "_scaled")
    assert {k: record[k] for k in want} == want and record["temperature"] == 2.5
    assert set(record) == set(CALIBRATION_FIELDS)
    unscaled = ScaledCalibration(None)
    unscaled.add(logits, labels)
    assert not any(key.endswith("_scaled") or key == "temperature" for key in unscaled.record("test"))


def test_a_run_fits_its_temperature_on_dev_and_scales_the_test_figures(small_config, digits):
    config = small_config()
    summary = train(config, dataset=digits)
    records = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert all(set(CALIBRATION_FIELDS) | set(DEV_FIELDS) <= set(r) for r in records)
    for field in CALIBRATION_FIELDS:
        selected = next(r for r in records if r["step"] == summary["selected_step"])
        assert summary[f"selected_{field}"] == selected[field]
    # The last check is the saved model's: its temperature is the one fit on its dev logits.
    model, method = build_network(config, digits)
    network = torch.nn.ModuleDict({"model": model, "method": method})
    network.load_state_dict(torch.load(config.run_dir() / "model.pt", weights_only=True))
    with torch.no_grad():
        predict = Predictor(network, model, method)
        dev_logits = predict(as_float_images(digits.dev.inputs))
        test_logits = predict(as_float_images(digits.test.inputs))
    temperature = fit_temperature(dev_logits, digits.dev.labels)
    assert records[-1]["temperature"] == pytest.approx(temperature, rel=1e-4)
    # The dev figures a tuning objective can read: raw, and after the temperature fit on dev.
    assert records[-1]["dev_nll"] == pytest.approx(
        measure_calibration(dev_logits, digits.dev.labels).nll, rel=1e-4
    )
    dev_scaled = measure_calibration(dev_logits / temperature, digits.dev.labels)
    assert records[-1]["dev_ece_scaled"] == pytest.approx(dev_scaled.ece, rel=1e-3, abs=1e-4)
    assert records[-1]["dev_nll_scaled"] <= records[-1]["dev_nll"] + 1e-12  # fit to lower it
    assert temperature != pytest.approx(fit_temperature(test_logits, digits.test.labels), rel=1e-3)
    scaled = measure_calibration(test_logits / temperature, digits.test.labels)
    assert records[-1]["test_nll_scaled"] == pytest.approx(scaled.nll, rel=1e-4)
    assert records[-1]["test_ece_scaled"] == pytest.approx(scaled.ece, rel=1e-3, abs=1e-4)


def test_without_a_dev_split_nothing_is_scaled(small_config, digits):
    from dataclasses import replace

    config = small_config("selection=final")
    train(config, dataset=replace(digits, dev=None))
    records = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert all("test_ece" in r and "test_ece_scaled" not in r and "temperature" not in r for r in records)


def test_the_dev_figures_are_those_of_every_figure_s_sums_for_the_raw_and_scaled_dev_logits():
    """The dev split's ECE and NLL come from the top-probability sums alone (cheaper), the same
    numbers as the full figures give; its AURC (%) is that of the raw max-softmax confidence."""
    logits, labels = random_predictions(n=500, seed=9, scale=4.0)
    temperature, figures = dev_calibration(logits, labels)
    raw, scaled = (
        measure_calibration(logits, labels),
        measure_calibration(logits.double() / temperature, labels),
    )
    # By a plain loop: the error rate of the k most confident, averaged over k (no ties here).
    confidence = torch.softmax(logits, -1).max(-1).values
    wrong = (logits.argmax(-1) != labels)[confidence.argsort(descending=True)].tolist()
    aurc = sum(sum(wrong[:k]) / k for k in range(1, len(wrong) + 1)) / len(wrong)
    assert figures == {
        "dev_ece": raw.ece,
        "dev_nll": raw.nll,
        "dev_ece_scaled": scaled.ece,
        "dev_nll_scaled": scaled.nll,
        "dev_aurc": pytest.approx(100 * aurc, rel=1e-12),
    }
    assert set(figures) == set(DEV_FIELDS) and 0 < figures["dev_aurc"] < 100 * (1 - 0.6)
    assert temperature == fit_temperature(logits, labels)
