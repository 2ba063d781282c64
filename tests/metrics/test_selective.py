"""Selective classification (labelemb.metrics.selective) against plain loops written here, every
order of tied examples, scikit-learn's AUROC through Traub et al.'s AUGRC identity, hand-computed
curves, and the degenerate cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from labelemb.metrics.selective import (
    CURVE_COVERAGES,
    NORM_P_GRID,
    RISK_CURVE,
    augrc,
    aurc,
    choose_norm_p,
    correct_predictions,
    coverage_at_risk,
    max_softmax,
    msp_risk_curve,
    pnorm_confidence,
    risk_at_coverage,
    risk_at_coverages,
    risk_coverage_curve,
    selective_figures,
)


def ordered_areas(correct_in_order: list[int]) -> tuple[float, float]:
    """AURC and AUGRC of predictions already in order, most confident first, by a plain loop."""
    n = len(correct_in_order)
    risks, generalised = [], []
    for k in range(1, n + 1):
        wrong = sum(1 for right in correct_in_order[:k] if not right)
        risks.append(wrong / k)
        generalised.append(wrong / n)
    return sum(risks) / n, sum(generalised) / n


def areas_over_every_tie_order(confidence: list[float], correct: list[int]) -> tuple[float, float]:
    """The mean AURC and AUGRC over every order of the tied examples (each block of equal
    confidences permuted every way, the blocks in descending order)."""
    blocks = [
        [right for c, right in zip(confidence, correct) if c == level]
        for level in sorted(set(confidence), reverse=True)
    ]
    totals, count = [0.0, 0.0], 0
    for orders in itertools.product(*(list(itertools.permutations(block)) for block in blocks)):
        a, g = ordered_areas([right for block in orders for right in block])
        totals[0] += a
        totals[1] += g
        count += 1
    return totals[0] / count, totals[1] / count


def random_case(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    confidence = rng.integers(0, 4, n) / 4 if ties else rng.random(n)
    # More confident predictions are more often right, as a real score's would be.
    correct = (rng.random(n) < 0.3 + 0.6 * confidence).astype(float)
    return confidence, correct


def test_areas_without_ties_equal_a_plain_loop():
    for seed in range(5):
        confidence, correct = random_case(60, seed)
        order = np.argsort(-confidence)
        want_aurc, want_augrc = ordered_areas(list(correct[order]))
        assert aurc(confidence, correct) == pytest.approx(want_aurc, rel=1e-12)
        assert augrc(confidence, correct) == pytest.approx(want_augrc, rel=1e-12)


def test_areas_with_ties_are_their_mean_over_every_order_of_the_tied_examples():
    confidence = [0.9, 0.9, 0.9, 0.7, 0.5, 0.5, 0.5, 0.5, 0.2]
    correct = [1, 0, 1, 1, 0, 1, 0, 1, 0]
    want_aurc, want_augrc = areas_over_every_tie_order(confidence, correct)
    assert aurc(confidence, correct) == pytest.approx(want_aurc, rel=1e-12)
    assert augrc(confidence, correct) == pytest.approx(want_augrc, rel=1e-12)
    # And so the order the examples come in does not matter.
    for seed in range(5):
        shuffled = np.random.default_rng(seed).permutation(len(confidence))
        c, r = np.array(confidence)[shuffled], np.array(correct)[shuffled]
        assert aurc(c, r) == pytest.approx(want_aurc, rel=1e-12)
        assert augrc(c, r) == pytest.approx(want_augrc, rel=1e-12)


def test_augrc_against_traub_et_al_s_identity_with_scikit_learn_s_auroc():
    for seed in range(5):
        confidence, correct = random_case(200, seed)
        accuracy = correct.mean()
        auroc = roc_auc_score(correct, confidence)
        identity = (1 - auroc) * accuracy * (1 - accuracy) + (1 - accuracy) ** 2 / 2
        # The mean over k = 1 .. N adds half a step to the area under the continuous curve.
        assert augrc(confidence, correct) == pytest.approx(identity + (1 - accuracy) / (2 * 200), rel=1e-12)


def test_the_curve_risk_at_coverage_and_coverage_at_risk_by_hand_with_ties():
    confidence = torch.tensor([0.9, 0.9, 0.8, 0.7, 0.7, 0.7, 0.6, 0.5, 0.4, 0.3])
    correct = torch.tensor([True, True, True, True, False, True, False, True, False, False])
    coverage, risk, threshold = risk_coverage_curve(confidence, correct)
    assert coverage.tolist() == pytest.approx([0.2, 0.3, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert risk.tolist() == pytest.approx([0, 0, 1 / 6, 2 / 7, 2 / 8, 3 / 9, 4 / 10])
    assert threshold.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert risk_at_coverage(confidence, correct) == pytest.approx(2 / 8)  # 0.8: 8 examples
    # 0.5 cannot stop inside the block of three 0.7s: the first point at or past it is 0.6.
    assert risk_at_coverage(confidence, correct, 0.5) == pytest.approx(1 / 6)
    assert risk_at_coverage(confidence, correct, 0.1 * 7) == pytest.approx(2 / 7)  # 0.7000000000000001
    assert coverage_at_risk(confidence, correct) == pytest.approx(0.3)  # 0.05: the first two points
    assert coverage_at_risk(confidence, correct, 0.26) == pytest.approx(0.8)  # not the last, 0.7's 2/7
    assert coverage_at_risk(confidence, correct, 0.4) == 1.0
    assert coverage_at_risk(confidence, correct, 0.0) == pytest.approx(0.3)


def test_degenerate_cases():
    n = 8
    ones, zeros = np.ones(n), np.zeros(n)
    confidence = np.linspace(0.1, 0.9, n)
    # All right: nothing to abstain from.
    assert aurc(confidence, ones) == 0.0 and augrc(confidence, ones) == 0.0
    assert risk_at_coverage(confidence, ones) == 0.0 and coverage_at_risk(confidence, ones) == 1.0
    # All wrong: every accepted prediction is an error.
    assert aurc(confidence, zeros) == pytest.approx(1.0)
    assert augrc(confidence, zeros) == pytest.approx((n + 1) / (2 * n))
    assert risk_at_coverage(confidence, zeros) == 1.0 and coverage_at_risk(confidence, zeros) == 0.0
    # Constant confidence: one block; the risk is the error rate at every coverage.
    constant, correct = np.full(n, 0.5), np.array([1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    assert aurc(constant, correct) == pytest.approx(0.25)
    assert augrc(constant, correct) == pytest.approx(0.25 * (n + 1) / (2 * n))
    coverage, risk, _ = risk_coverage_curve(constant, correct)
    assert coverage.tolist() == [1.0] and risk.tolist() == [0.25]
    assert risk_at_coverage(constant, correct, 0.1) == 0.25
    assert coverage_at_risk(constant, correct) == 0.0 and coverage_at_risk(constant, correct, 0.25) == 1.0
    # One example.
    assert aurc([0.7], [1]) == 0.0 and aurc([0.7], [0]) == 1.0 and augrc([0.7], [0]) == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: aurc([], []), "no examples"),
        (lambda: aurc([0.5, 0.6], [1]), "2 confidences for 1 predictions"),
        (lambda: augrc([0.5, math.nan], [1, 0]), "nan"),
        (lambda: aurc([0.5, 0.6], [1, 2]), r"1 \(right\) or 0 \(wrong\)"),
        (lambda: aurc([[0.5, 0.6]], [[1, 0]]), "one number per example"),
        (lambda: risk_at_coverage([0.5], [1], 0.0), r"coverage must be in \(0, 1\], got 0.0"),
        (lambda: coverage_at_risk([0.5], [1], 1.5), r"risk must be in \[0, 1\], got 1.5"),
        (lambda: max_softmax(torch.zeros(2, 3), 0.0), "temperature must be a positive number"),
        (lambda: pnorm_confidence(torch.zeros(2, 3), 0), "p > 0"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_max_softmax_raw_and_scaled_equal_torch_s_softmax():
    logits = 3 * torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(max_softmax(logits), logits.double().softmax(-1).max(-1).values, rtol=1e-12)
    assert torch.allclose(max_softmax(logits, 2.5), (logits.double() / 2.5).softmax(-1).max(-1).values)
    assert max_softmax(torch.tensor([[0.0, 1000.0]])).item() == 1.0


def test_pnorm_confidence_equals_the_formula_row_by_row():
    logits = 4 * torch.randn(30, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits[0] = 2.0  # a row of equal logits scores 0
    for p in (1, 2, 3.5, 10):
        got = pnorm_confidence(logits, p)
        for row, value in zip(logits.tolist(), got.tolist()):
            mean = sum(row) / len(row)
            centred = [z - mean for z in row]
            norm = sum(abs(u) ** p for u in centred) ** (1 / p)
            assert value == pytest.approx(max(centred) / norm if norm > 0 else 0.0, rel=1e-9, abs=1e-15)
    # A shift and a positive scale of a row leave it unchanged: it reads the logits' shape only.
    assert torch.allclose(pnorm_confidence(3 * logits + 7, 2), pnorm_confidence(logits, 2))


def test_choose_norm_p_takes_the_grid_s_lowest_aurc_first_among_equals():
    generator = torch.Generator().manual_seed(2)
    logits = 2 * torch.randn(300, 10, generator=generator)
    labels = torch.where(torch.rand(300, generator=generator) < 0.7, logits.argmax(-1), 0)
    correct = (logits.argmax(-1) == labels).double().numpy()
    scores = [aurc(pnorm_confidence(logits, p).numpy(), correct) for p in NORM_P_GRID]
    assert choose_norm_p(logits, labels) == NORM_P_GRID[scores.index(min(scores))]
    # Two classes: every row scores 2^(-1/p) (|u_1| = |u_2|), rounding error included: all tie, so
    # every p has the same AURC (the error rate) and the first is taken.
    two = torch.randn(40, 2, generator=generator)
    assert set(pnorm_confidence(two, 3).tolist()) == {round(2 ** (-1 / 3), 12)}
    assert choose_norm_p(two, torch.zeros(40, dtype=torch.long), grid=(3, 1, 2)) == 3.0


def test_selective_figures_name_the_figures_of_each_score():
    generator = torch.Generator().manual_seed(3)
    logits = 3 * torch.randn(120, 5, generator=generator)
    labels = torch.randint(0, 5, (120,), generator=generator)
    correct = correct_predictions(logits, labels)
    assert torch.equal(correct, logits.argmax(-1) == labels)
    raw = selective_figures(logits, labels)
    assert set(raw) == {f"selective_msp_{f}" for f in ("aurc", "augrc", "risk_at_80", "coverage_at_5")}
    assert raw["selective_msp_aurc"] == 100.0 * aurc(max_softmax(logits), correct)  # in percent
    everything = selective_figures(logits, labels, temperature=1.7, norm_p=3, coverage=0.9, risk=0.025)
    scaled = max_softmax(logits, 1.7)
    assert everything["selective_msp_scaled_augrc"] == 100.0 * augrc(scaled, correct)
    assert everything["selective_msp_scaled_risk_at_90"] == 100.0 * risk_at_coverage(scaled, correct, 0.9)
    normalised = pnorm_confidence(logits, 3)
    assert everything["selective_pnorm_coverage_at_2_5"] == 100.0 * coverage_at_risk(
        normalised, correct, 0.025
    )
    assert everything["selective_pnorm_aurc"] == 100.0 * aurc(normalised, correct)
    assert everything["selective_pnorm_p"] == 3.0 and len(everything) == 13
    assert all(isinstance(value, float) for value in everything.values())
    logits[4, 1] = float("inf")
    assert selective_figures(logits, labels, temperature=1.7, norm_p=3) == {}


def risk_over_every_tie_order(confidence: list[float], correct: list[int], coverage: float) -> float:
    """The mean over every order of the tied examples of the error rate of the k = max(1,
    ceil(coverage N)) most confident, k counted here with exact fractions."""
    from fractions import Fraction

    n = len(confidence)
    k = max(1, math.ceil(Fraction(str(coverage)) * n))
    blocks = [
        [right for c, right in zip(confidence, correct) if c == level]
        for level in sorted(set(confidence), reverse=True)
    ]
    risks = [
        sum(1 for right in [r for block in orders for r in block][:k] if not right) / k
        for orders in itertools.product(*(list(itertools.permutations(block)) for block in blocks))
    ]
    return sum(risks) / len(risks)


def test_risk_at_coverages_is_the_risk_of_the_top_k_over_every_tie_order():
    confidence = [0.9, 0.9, 0.9, 0.7, 0.5, 0.5, 0.2, 0.1]
    correct = [1, 0, 1, 1, 0, 1, 0, 1]
    grid = [0.0, 0.01, 0.125, 0.2, 0.25, 0.375, 0.5, 0.6, 0.75, 0.8, 0.875, 0.99, 1.0]
    got = risk_at_coverages(confidence, correct, grid)
    for coverage, risk in zip(grid, got):
        assert risk == pytest.approx(risk_over_every_tie_order(confidence, correct, coverage), abs=1e-12)
    # By hand: the first block (2 right of 3) holds 1/3 error per example taken from it.
    assert got[0] == pytest.approx(1 / 3) and got[-1] == 3 / 8
    # At the coverages k / N its mean is the AURC; the default grid is 0, 0.01, ..., 1.
    confidence, correct = random_case(40, 7, ties=True)
    at_k = risk_at_coverages(confidence, correct, np.arange(1, 41) / 40)
    assert at_k.mean() == pytest.approx(aurc(confidence, correct), abs=1e-12)
    assert len(risk_at_coverages(confidence, correct)) == 101 and CURVE_COVERAGES[7] == pytest.approx(0.07)
    # 0.07 of 100 examples is 7 of them, though 0.07 * 100 rounds to 7.000000000000001.
    hundred = [1.0 - i / 100 for i in range(100)]
    wrong_eighth = [0 if i == 7 else 1 for i in range(100)]
    assert risk_at_coverages(hundred, wrong_eighth, [0.07, 0.08]).tolist() == [0.0, 1 / 8]
    with pytest.raises(ValueError, match=r"a coverage must be in \[0, 1\], got 1.5"):
        risk_at_coverages([0.5], [1], [0.5, 1.5])


def test_msp_risk_curve_is_the_max_softmax_risk_at_the_grid_and_empty_when_diverged():
    generator = torch.Generator().manual_seed(4)
    logits = 3 * torch.randn(90, 4, generator=generator)
    labels = torch.randint(0, 4, (90,), generator=generator)
    (curve,) = msp_risk_curve(logits, labels).values()
    correct = (logits.argmax(-1) == labels).double().numpy()
    want = risk_at_coverages(logits.double().softmax(-1).max(-1).values.numpy(), correct)
    assert list(msp_risk_curve(logits, labels)) == [RISK_CURVE] and len(curve) == 101
    assert curve == pytest.approx((100.0 * want).tolist(), abs=1e-10)  # in percent
    assert curve[-1] == pytest.approx(100.0 * (1 - correct.mean()))
    assert all(isinstance(value, float) for value in curve)
    logits[3, 0] = float("nan")
    assert msp_risk_curve(logits, labels) == {}
