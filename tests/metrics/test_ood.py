"""Out-of-distribution detection (labelemb.metrics.ood) against plain loops written here and
torchmetrics, with ties and the degenerate cases, and each score against its formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_roc

from labelemb.metrics.ood import (
    SCORES,
    detection_figures,
    energy_score,
    fpr_at_tpr,
    max_logit_score,
    msp_score,
    negative_entropy_score,
    ood_figures,
)


def pairwise_auroc(inside: list[float], outside: list[float]) -> float:
    """P(an ID score > an OOD score) + P(equal) / 2, over every pair."""
    total = 0.0
    for a in inside:
        for b in outside:
            total += 1.0 if a > b else 0.5 if a == b else 0.0
    return total / (len(inside) * len(outside))


def average_precision(positive: list[float], negative: list[float]) -> float:
    """sum_n (R_n - R_(n-1)) P_n over the distinct thresholds, highest first, every example with a
    score >= the threshold accepted."""
    total, recall_before = 0.0, 0.0
    for threshold in sorted(set(positive) | set(negative), reverse=True):
        true = sum(1 for s in positive if s >= threshold)
        false = sum(1 for s in negative if s >= threshold)
        recall = true / len(positive)
        total += (recall - recall_before) * true / (true + false)
        recall_before = recall
    return total


def false_positive_rate(inside: list[float], outside: list[float], tpr: float = 0.95) -> float:
    """The OOD share accepted at the first threshold, from the highest, accepting >= tpr of the ID."""
    for threshold in sorted(set(inside) | set(outside), reverse=True):
        if sum(1 for s in inside if s >= threshold) >= tpr * len(inside):
            return sum(1 for s in outside if s >= threshold) / len(outside)
    raise AssertionError("unreachable: the lowest threshold accepts every ID example")


def tied_scores(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores on a coarse grid, so that many ID and OOD examples tie, ID higher on average."""
    generator = torch.Generator().manual_seed(seed)
    inside = torch.randint(2, 10, (57,), generator=generator).double() / 2
    outside = torch.randint(0, 7, (43,), generator=generator).double() / 2
    return inside, outside


def test_figures_with_ties_equal_plain_loops_and_torchmetrics():
    for seed in range(4):
        inside, outside = tied_scores(seed)
        got = detection_figures(inside, outside)
        ins, outs = inside.tolist(), outside.tolist()
        assert got["auroc"] == pytest.approx(pairwise_auroc(ins, outs), rel=1e-12)
        assert got["aupr_in"] == pytest.approx(average_precision(ins, outs), rel=1e-12)
        assert got["aupr_out"] == pytest.approx(
            average_precision([-s for s in outs], [-s for s in ins]), rel=1e-12
        )
        assert got["fpr95"] == pytest.approx(false_positive_rate(ins, outs), rel=1e-12)
        scores = torch.cat([inside, outside])
        is_in = torch.cat([torch.ones(len(inside)), torch.zeros(len(outside))]).long()
        assert got["auroc"] == pytest.approx(binary_auroc(scores, is_in).item(), abs=1e-6)
        assert got["aupr_in"] == pytest.approx(binary_average_precision(scores, is_in).item(), abs=1e-6)
        assert got["aupr_out"] == pytest.approx(binary_average_precision(-scores, 1 - is_in).item(), abs=1e-6)


def test_fpr_at_tpr_equals_the_first_roc_point_reaching_the_tpr():
    # torchmetrics' ROC keeps every distinct threshold (scikit-learn's drops collinear points).
    for seed in range(4):
        inside, outside = tied_scores(seed)
        scores = torch.cat([inside, outside])
        is_in = torch.cat([torch.ones(len(inside)), torch.zeros(len(outside))]).long()
        fpr, tpr, _ = binary_roc(scores, is_in)
        for level in (0.5, 0.9, 0.95, 1.0):
            want = fpr[torch.nonzero(tpr >= level - 1e-7)[0, 0]].item()
            assert fpr_at_tpr(inside, outside, level) == pytest.approx(want, abs=1e-6)


def test_fpr_at_tpr_by_hand_ties_at_the_threshold_are_accepted():
    inside = torch.arange(20, 0, -1).double()  # 20, 19, ..., 1: 95 % is the top 19, threshold 2
    outside = torch.tensor([2.0, 2.0, 1.0, 0.0, 5.0])
    assert fpr_at_tpr(inside, outside) == pytest.approx(3 / 5)  # 5, 2, 2 are >= 2
    assert fpr_at_tpr(inside, outside, 1.0) == pytest.approx(4 / 5)
    # 95 % of 21 is 19.95: 20 examples are needed, so the threshold is the 20th highest.
    assert fpr_at_tpr(torch.arange(21, 0, -1).double(), outside) == pytest.approx(3 / 5)


def test_degenerate_cases():
    inside, outside = torch.full((6,), 0.3), torch.full((4,), 0.3)
    constant = detection_figures(inside, outside)
    assert constant == pytest.approx({"auroc": 0.5, "aupr_in": 0.6, "aupr_out": 0.4, "fpr95": 1.0})
    separated = detection_figures(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0, 2.0]))
    assert separated == pytest.approx({"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0})
    reversed_ = detection_figures(torch.tensor([1.0]), torch.tensor([2.0]))  # one of each
    assert reversed_ == pytest.approx({"auroc": 0.0, "aupr_in": 0.5, "aupr_out": 0.5, "fpr95": 1.0})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: detection_figures(torch.tensor([]), torch.tensor([1.0])), "got 0 and 1"),
        (lambda: fpr_at_tpr(torch.tensor([1.0]), torch.tensor([])), "got 1 and 0"),
        (lambda: detection_figures(torch.tensor([math.nan]), torch.tensor([1.0])), "nan"),
        (lambda: fpr_at_tpr(torch.tensor([1.0]), torch.tensor([1.0]), 0.0), r"in \(0, 1\], got 0.0"),
        (lambda: ood_figures(torch.zeros(2, 3), torch.zeros(2, 4)), "4 classes for a model of 3"),
        (lambda: energy_score(torch.zeros(2, 3), 0.0), "temperature must be a positive number, got 0.0"),
        (
            lambda: ood_figures(torch.zeros(2, 3), torch.zeros(2, 3), energy_temperature=math.inf),
            "energy temperature must be a positive number, got inf",
        ),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_each_score_equals_its_formula():
    logits = 3 * torch.randn(40, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    logits[0] = torch.tensor([0.0, 800.0, 0.0, 0.0, 0.0, 0.0])  # probabilities that underflow to 0
    probabilities = logits.softmax(-1)
    assert torch.allclose(msp_score(logits), probabilities.max(-1).values, rtol=1e-12)
    assert torch.equal(max_logit_score(logits), logits.max(-1).values)
    for row, energy in zip(logits.tolist(), energy_score(logits).tolist()):
        top = max(row)  # logsumexp written out, from the row's maximum (row 0: 800 + log(1 + 5 e^-800))
        assert energy == pytest.approx(top + math.log(sum(math.exp(z - top) for z in row)), rel=1e-12)
    want = [-entropy(row) for row in probabilities.numpy()]
    assert np.allclose(negative_entropy_score(logits).numpy(), want, rtol=1e-9, atol=1e-12)
    assert negative_entropy_score(logits)[0].item() == 0.0
    assert negative_entropy_score(torch.zeros(1, 6)).item() == pytest.approx(-math.log(6))


def test_ood_figures_name_every_score_and_figure_and_rank_confident_inputs_as_in_distribution():
    generator = torch.Generator().manual_seed(6)
    # In distribution: one class far ahead; out: flat logits. Every score should tell them apart.
    inside = torch.randn(80, 5, generator=generator) + 6 * torch.nn.functional.one_hot(
        torch.randint(0, 5, (80,), generator=generator), 5
    )
    outside = torch.randn(50, 5, generator=generator)
    figures = ood_figures(inside, outside)
    assert set(figures) == {
        f"ood_{score}_{figure}" for score in SCORES for figure in ("auroc", "aupr_in", "aupr_out", "fpr95")
    }
    for score, function in SCORES.items():
        alone = detection_figures(function(inside), function(outside))
        recorded = {key: figures[f"ood_{score}_{key}"] for key in alone}
        assert recorded == {k: 100.0 * v for k, v in alone.items()}  # in percent: in_units
        assert figures[f"ood_{score}_auroc"] > 95.0 and figures[f"ood_{score}_fpr95"] < 20.0, score
    outside[3, 0] = math.nan
    assert ood_figures(inside, outside) == {}


def test_energy_at_a_temperature_is_t_logsumexp_of_z_over_t_written_out():
    logits = 3 * torch.randn(30, 5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for temperature in (0.5, 1.0, 4.0):
        for row, energy in zip(logits.tolist(), energy_score(logits, temperature).tolist()):
            top = max(row) / temperature
            want = temperature * (top + math.log(sum(math.exp(z / temperature - top) for z in row)))
            assert energy == pytest.approx(want, rel=1e-12)
    # Liu et al.'s limits: the maximum logit as T falls, T log m plus the mean logit as T rises.
    assert torch.allclose(energy_score(logits, 1e-4), logits.max(-1).values, atol=1e-3)
    far = energy_score(logits, 1e6) - 1e6 * math.log(5)
    assert torch.allclose(far, logits.mean(-1), atol=1e-4)


def test_ood_figures_judge_the_energy_at_the_temperature_given():
    generator = torch.Generator().manual_seed(9)
    inside, outside = 2 * torch.randn(60, 4, generator=generator), torch.randn(40, 4, generator=generator)
    cooled = ood_figures(inside, outside, energy_temperature=0.25)
    alone = detection_figures(energy_score(inside, 0.25), energy_score(outside, 0.25))
    assert {key: cooled[f"ood_energy_{key}"] for key in alone} == {k: 100.0 * v for k, v in alone.items()}
    assert cooled["ood_energy_auroc"] != ood_figures(inside, outside)["ood_energy_auroc"]
    assert cooled["ood_msp_auroc"] == ood_figures(inside, outside)["ood_msp_auroc"]
