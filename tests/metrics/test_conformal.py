"""Split-conformal sets (labelemb.metrics.conformal): the scores against their definitions row by
row (ties included), the threshold and sets by hand on a tiny case, and the coverage guarantee on
exchangeable synthetic data averaged over many splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labelemb.metrics.conformal import (
    METHODS,
    calibrate_threshold,
    check_level,
    class_scores,
    conformal_figures,
    conformal_threshold,
    coverage_and_size,
    label_scores,
    prediction_sets,
    probabilities,
)


def scores_by_definition(row: list[float], label: int, method: str, lam=0.01, k_reg=5, u=1.0) -> float:
    """s(x, y) written out from the definitions, one class at a time."""
    p = row[label]
    if method == "thr":
        return 1 - p
    above = sum(q for q in row if q > p)
    rank = sum(1 for q in row if q >= p)
    score = above + u * p
    return score + lam * max(0, rank - k_reg) if method == "raps" else score


def test_scores_equal_their_definitions_with_ties():
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(2 * torch.randn(20, 8, generator=generator, dtype=torch.float64), -1)
    probs[0] = 1 / 8  # every class tied
    probs[1] = torch.tensor([0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0], dtype=torch.float64)
    for method in METHODS:
        for lam, k_reg in ((0.01, 5), (0.2, 1)):
            got = class_scores(probs, method, lam=lam, k_reg=k_reg)
            for i, row in enumerate(probs.tolist()):
                for y in range(8):
                    want = scores_by_definition(row, y, method, lam, k_reg)
                    assert got[i, y].item() == pytest.approx(want, abs=1e-12), (method, i, y)
    # Randomised: p_y becomes u * p_y, one u per row, the same for every class of it.
    generator = torch.Generator().manual_seed(1)
    randomised = class_scores(probs, "raps", generator=generator)
    u = torch.rand(20, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for i, row in enumerate(probs.tolist()):
        for y in range(8):
            want = scores_by_definition(row, y, "raps", u=u[i, 0].item())
            assert randomised[i, y].item() == pytest.approx(want, abs=1e-12)


def test_the_threshold_is_the_k_th_smallest_score_by_hand():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0])
    # n = 10, level 0.8: k = ceil(11 * 0.8) = 9, the 9th smallest (numpy's "higher" gives the 10th).
    assert conformal_threshold(scores, 0.8) == pytest.approx(0.9)
    assert conformal_threshold(scores, 0.8) == np.quantile(scores.numpy(), 9 / 10, method="inverted_cdf")
    assert conformal_threshold(scores, 0.5) == pytest.approx(0.6)  # k = ceil(5.5) = 6
    assert conformal_threshold(scores, 10 / 11) == pytest.approx(1.0)  # k = 10 exactly, not 11
    assert conformal_threshold(scores, 0.95) == math.inf  # k = 11 > n: every set is every class
    assert conformal_threshold(torch.tensor([0.4]), 0.4) == pytest.approx(0.4)  # k = ceil(0.8) = 1


def test_sets_by_hand_on_a_tiny_case():
    # Calibration: four examples of three classes, probabilities given directly (logits = log p).
    cal = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]]).log()
    cal_labels = torch.tensor([0, 1, 0, 2])
    # THR scores 1 - p_y: 0.3, 0.6, 0.8, 0.4. Level 0.6: k = ceil(5 * 0.6) = 3, the 3rd smallest.
    threshold = calibrate_threshold(cal, cal_labels, 0.6, "thr")
    assert threshold == pytest.approx(0.6)
    new = torch.tensor([[0.45, 0.45, 0.1], [0.8, 0.15, 0.05], [0.3, 0.3, 0.4]]).log()
    sets = prediction_sets(new, threshold, "thr")  # p_y >= 0.4
    assert sets.tolist() == [[True, True, False], [True, False, False], [False, False, True]]
    coverage, size = coverage_and_size(sets, torch.tensor([1, 1, 2]))
    assert coverage == pytest.approx(2 / 3) and size == pytest.approx(4 / 3)
    # APS scores rho + p_y: 0.7, 0.9, 0.6 + 0.2 = 0.8, 0.6; the 3rd smallest is 0.8.
    threshold = calibrate_threshold(cal, cal_labels, 0.6, "aps")
    assert threshold == pytest.approx(0.8)
    # Row 1: 0.45 (tied: rho 0), 0.45, 1.0; row 2: 0.8, 0.95, 1.0; row 3: 0.6, 0.6, 0.4.
    sets = prediction_sets(new, threshold, "aps")
    assert sets.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    # A level the calibration set is too small for: every class.
    assert prediction_sets(new, calibrate_threshold(cal, cal_labels, 0.9, "raps"), "raps").all()


def test_a_temperature_changes_the_probabilities_not_the_prediction():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    assert torch.allclose(probabilities(logits, 2.0), torch.softmax(logits.double() / 2, -1))
    assert probabilities(logits, 0.5).argmax() == 0


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1, math.nan, 90])
def test_a_level_outside_zero_one_is_one_clear_error(level):
    with pytest.raises(
        ValueError, match=r"a conformal level is a target coverage in \(0, 1\), such as 0.9; got"
    ):
        check_level(level)
    with pytest.raises(ValueError, match="target coverage in"):
        calibrate_threshold(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), level)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: conformal_threshold(torch.tensor([]), 0.9), "at least one example"),
        (
            lambda: class_scores(torch.ones(2, 2) / 2, "lac"),
            "unknown conformal score 'lac'; choose one of thr",
        ),
        (lambda: label_scores(torch.ones(2, 2) / 2, torch.tensor([0, 2])), "outside the 2 classes"),
        (lambda: label_scores(torch.ones(2, 2) / 2, torch.tensor([0])), "1 labels for 2 predictions"),
        (lambda: probabilities(torch.zeros(1, 2), -1.0), "positive number"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def synthetic(seed: int = 0, n: int = 2000, classes: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of an imperfect model and labels drawn from a different softmax of them, so that the
    model is miscalibrated but the examples are exchangeable."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    truth = torch.softmax(
        0.6 * logits + torch.randn(n, classes, generator=generator, dtype=torch.float64), -1
    )
    return logits, torch.multinomial(truth, 1, generator=generator).squeeze(-1)


def test_coverage_holds_on_average_over_many_splits_and_is_tight_for_continuous_scores():
    logits, labels = synthetic()
    calibration, level, splits = 50, 0.9, 300
    k = math.ceil((calibration + 1) * level)  # 46: the expected coverage of continuous scores is k / (n + 1)
    generator = torch.Generator().manual_seed(7)
    coverages = {method: [] for method in (*METHODS, "aps randomised")}
    for _ in range(splits):
        order = torch.randperm(len(labels), generator=generator)
        cal, test = order[:calibration], order[calibration : calibration + 500]
        for method in coverages:
            name, noise = method.split()[0], torch.Generator().manual_seed(len(coverages[method]))
            options = {"generator": noise} if method.endswith("randomised") else {}
            threshold = calibrate_threshold(logits[cal], labels[cal], level, name, **options)
            sets = prediction_sets(logits[test], threshold, name, **options)
            coverages[method].append(coverage_and_size(sets, labels[test])[0])
    for method, values in coverages.items():
        assert np.mean(values) >= level - 0.005, method  # 300 splits: a standard error of about 0.002
    # THR's scores and the randomised APS scores are continuous: the mean is k / (n + 1), not more
    # (the order statistic above it, numpy's "higher", would give 47 / 51 = 0.922).
    for method in ("thr", "aps randomised"):
        assert np.mean(coverages[method]) == pytest.approx(k / (calibration + 1), abs=0.007), method


def test_conformal_figures_for_a_split():
    logits, labels = synthetic(seed=3, n=600)
    figures = conformal_figures(logits[:300], labels[:300], logits[300:], labels[300:], 0.8, temperature=1.3)
    assert figures["conformal_level"] == 80.0  # in percent, as every share recorded
    assert set(figures) == {"conformal_level"} | {
        f"conformal_{method}_{figure}" for method in METHODS for figure in ("coverage", "set_size")
    }
    for method in METHODS:
        threshold = calibrate_threshold(logits[:300], labels[:300], 0.8, method, temperature=1.3)
        sets = prediction_sets(logits[300:], threshold, method, temperature=1.3)
        coverage, size = coverage_and_size(sets, labels[300:])
        assert (
            figures[f"conformal_{method}_coverage"] == 100.0 * coverage
            and figures[f"conformal_{method}_set_size"] == size
        )
    randomised = conformal_figures(
        logits[:300], labels[:300], logits[300:], labels[300:], randomized=True, seed=4
    )
    again = conformal_figures(logits[:300], labels[:300], logits[300:], labels[300:], randomized=True, seed=4)
    assert (
        randomised == again
        and randomised["conformal_thr_coverage"]
        == conformal_figures(logits[:300], labels[:300], logits[300:], labels[300:])["conformal_thr_coverage"]
    )
    logits[400, 2] = math.nan
    assert conformal_figures(logits[:300], labels[:300], logits[300:], labels[300:]) == {}
