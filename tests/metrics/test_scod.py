"""SCOD (labelemb.metrics.scod): selective classification where an accepted out-of-distribution
input counts as an error, against plain loops: AURC and AUGRC over every order of tied inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from labelemb.metrics.ood import SCORES
from labelemb.metrics.scod import SCOD_CURVE, scod_figures, scod_risk_curve


def loop_areas(confidence: list[float], wrong: list[bool]) -> tuple[float, float]:
    """AURC and AUGRC as the mean over every order of equal confidences of the areas of that
    order: the inputs taken most confident first, err(k) / k and err(k) / N at each k."""
    n = len(confidence)
    orders = [
        p
        for p in itertools.permutations(range(n))
        if all(confidence[p[i]] >= confidence[p[i + 1]] for i in range(n - 1))
    ]
    aurcs, augrcs = [], []
    for order in orders:
        errors, risk, generalised = 0, 0.0, 0.0
        for k, i in enumerate(order, start=1):
            errors += wrong[i]
            risk += errors / k
            generalised += errors / n
        aurcs.append(risk / n)
        augrcs.append(generalised / n)
    return sum(aurcs) / len(aurcs), sum(augrcs) / len(augrcs)


def small_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four ID rows and three OOD rows, each one of three rows of 3 classes: inputs alike tie,
    between ID and OOD too."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]).roll(seed, dims=-1)
    pick = torch.randint(0, 3, (7,), generator=generator)
    return rows[pick[:4]], torch.randint(0, 3, (4,), generator=generator), rows[pick[4:]]


@pytest.mark.parametrize("seed", range(6))
def test_each_scores_scod_areas_equal_the_loop_over_every_order_of_ties(seed):
    in_logits, labels, out_logits = small_case(seed)
    figures = scod_figures(in_logits, labels, out_logits)
    wrong = [bool(in_logits[i].argmax() != labels[i]) for i in range(4)] + [True] * 3
    for name, score in SCORES.items():
        confidence = torch.cat([score(in_logits), score(out_logits)]).tolist()
        want_aurc, want_augrc = loop_areas(confidence, wrong)
        assert figures[f"scod_{name}_aurc"] == pytest.approx(100.0 * want_aurc, abs=1e-10), name
        assert figures[f"scod_{name}_augrc"] == pytest.approx(100.0 * want_augrc, abs=1e-10), name


def test_an_ood_input_accepted_first_costs_more_than_one_accepted_last():
    in_logits = torch.tensor([[5.0, 0.0], [4.0, 0.0], [3.0, 0.0]])
    labels = torch.zeros(3, dtype=torch.long)  # every ID prediction right
    confident_ood, doubtful_ood = torch.tensor([[9.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    first = scod_figures(in_logits, labels, confident_ood)["scod_msp_aurc"]
    last = scod_figures(in_logits, labels, doubtful_ood)["scod_msp_aurc"]
    assert first == pytest.approx(100.0 * (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)  # the error is in every top k
    assert last == pytest.approx(100.0 * (1 / 4) / 4)  # only the whole set holds it
    curve = scod_risk_curve(in_logits, labels, confident_ood)[SCOD_CURVE]
    assert len(curve) == 101 and curve[-1] == pytest.approx(25.0) and curve[0] == 100.0  # percent


def test_a_diverged_model_has_no_scod_and_bad_input_is_one_clear_line():
    in_logits, labels, out_logits = small_case(0)
    out_logits[0, 0] = math.nan
    assert scod_figures(in_logits, labels, out_logits) == {} == scod_risk_curve(in_logits, labels, out_logits)
    with pytest.raises(
        ValueError, match=r"SCOD needs out-of-distribution inputs: name an OOD set \(the config's ood:\)"
    ):
        scod_figures(in_logits, labels, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="OOD logits of 4 classes for a model of 3"):
        scod_figures(in_logits, labels, torch.zeros(2, 4))
