"""Selective classification with out-of-distribution inputs (SCOD): a deployed classifier abstains
both on its likely errors and on inputs from elsewhere, so an accepted out-of-distribution (OOD)
input counts as an error (Xia & Bouganis 2022, "Augmenting softmax information for selective
classification with out-of-distribution data"; Traub et al. 2024's AUGRC).

The ID test split's examples are right or wrong as the error counts them; every OOD example is
wrong. One confidence score (:data:`~labelemb.metrics.ood.SCORES`, higher = accept first) ranks
both together, and the figures of :mod:`~labelemb.metrics.selective` are those of the pooled
examples (ties spread evenly):

- **AURC**: the mean over k = 1 .. N of the risk err(k) / k of the k most confident inputs;
- **AUGRC**: the mean over k of err(k) / N, the share of all inputs accepted and wrong;
- the **risk-coverage curve** at the coverages 0, 0.01, ..., 1 (for a report's figure).

The figures depend on how many OOD inputs there are beside the ID ones: here the sets as given
(the test split and the whole OOD set, its ``limit`` where the config sets one).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .figures import SCOD_CURVE, in_units
from .ood import SCORES
from .selective import augrc, aurc, correct_predictions, risk_at_coverages


def scod_correct(in_logits: Tensor, in_labels: Tensor, out_count: int) -> Tensor:
    """Per input, ID first then OOD, whether accepting it is right: the ID prediction's
    correctness, and 0 for every one of the ``out_count`` OOD inputs."""
    right = correct_predictions(in_logits, in_labels).double()
    return torch.cat([right, torch.zeros(out_count, dtype=torch.float64)])


def scod_figures(in_logits: Tensor, in_labels: Tensor, out_logits: Tensor) -> dict[str, float]:
    """SCOD AURC and AUGRC (in percent) of every score of :data:`~labelemb.metrics.ood.SCORES`
    for an ID split's ``in_logits`` ``(N_in, m)`` and ``in_labels`` and an OOD set's
    ``out_logits`` ``(N_out, m)``, named ``scod_<score>_aurc`` and ``scod_<score>_augrc``; empty
    where a logit is not finite (a diverged model: no ranking). One clear ValueError for an OOD set
    that is missing or of another width."""
    if len(out_logits) == 0:
        raise ValueError("SCOD needs out-of-distribution inputs: name an OOD set (the config's ood:)")
    if len(in_logits) == 0 or len(in_logits) != len(in_labels):
        raise ValueError(f"SCOD needs ID logits and their labels, got {len(in_logits)} and {len(in_labels)}")
    if in_logits.shape[-1] != out_logits.shape[-1]:
        raise ValueError(f"OOD logits of {out_logits.shape[-1]} classes for a model of {in_logits.shape[-1]}")
    if not (bool(torch.isfinite(in_logits).all()) and bool(torch.isfinite(out_logits).all())):
        return {}
    correct = scod_correct(in_logits, in_labels, len(out_logits))
    figures: dict[str, float] = {}
    for name, score in SCORES.items():
        confidence = torch.cat([score(in_logits), score(out_logits)])
        figures[f"scod_{name}_aurc"] = aurc(confidence, correct)
        figures[f"scod_{name}_augrc"] = augrc(confidence, correct)
    return in_units(figures)


def scod_risk_curve(in_logits: Tensor, in_labels: Tensor, out_logits: Tensor) -> dict[str, list[float]]:
    """``{SCOD_CURVE: [...]}``: the SCOD risk (in percent) of the max-softmax confidence at the
    coverages 0, 0.01, ..., 1 of all inputs, ID and OOD
    (:func:`~labelemb.metrics.selective.risk_at_coverages`);
    empty where a logit is not finite."""
    if len(out_logits) == 0 or not (
        bool(torch.isfinite(in_logits).all()) and bool(torch.isfinite(out_logits).all())
    ):
        return {}
    msp = SCORES["msp"]
    confidence = torch.cat([msp(in_logits), msp(out_logits)])
    curve = risk_at_coverages(confidence, scod_correct(in_logits, in_labels, len(out_logits)))
    return in_units({SCOD_CURVE: curve})
