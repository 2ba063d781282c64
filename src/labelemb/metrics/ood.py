"""Out-of-distribution detection: whether a classifier's scores tell its own kind of input (in
distribution, ID) from inputs of another data set (out of distribution, OOD).

Each score is a function of one row of logits z, oriented so that higher means more in
distribution (:data:`SCORES`): the maximum softmax probability (Hendrycks & Gimpel 2017), the
maximum logit (Hendrycks et al. 2022), the negative energy T logsumexp_k (z_k / T) (Liu et al.
2020, "Energy-based out-of-distribution detection"; T = 1 unless told otherwise) and the negative
entropy of the softmax, sum_k p_k log p_k. A detector accepts an input as ID where its score is
at least a threshold; the figures (in percent, as every share labelemb records) judge every
threshold at once (:func:`detection_figures`):

- **AUROC**, ID positive: the probability that an ID example scores above an OOD one, ties
  counting one half (scikit-learn's ``roc_auc_score``); 50 % for a score that tells nothing;
- **AUPR-in**, ID positive, and **AUPR-out**, OOD positive with the scores negated: the average
  precision sum_n (R_n - R_(n-1)) P_n over the distinct thresholds (scikit-learn's
  ``average_precision_score``, no interpolation; tied examples are accepted together);
- **FPR at 95 % TPR**: the share of OOD examples accepted at the highest threshold that accepts
  at least 95 % of the ID examples (:func:`fpr_at_tpr`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy
import torch
from torch import Tensor

from .figures import in_units
from .softmax import softmax_parts

#: The true-positive rate the FPR is read at, unless told otherwise.
TPR = 0.95


def msp_score(logits: Tensor) -> Tensor:
    """The maximum softmax probability max_k softmax(z)_k of each row (float64)."""
    return 1.0 / softmax_parts(logits.detach().cpu().double()).total


def max_logit_score(logits: Tensor) -> Tensor:
    """The maximum logit max_k z_k of each row (float64)."""
    return logits.detach().cpu().double().max(dim=-1).values


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The negative energy of each row, T logsumexp_k (z_k / T) (Liu et al. 2020's -E(x; f), Eq. 2,
    at temperature T = ``temperature``, 1 by default; float64). As T falls it tends to the maximum
    logit, as T rises to T log m plus the mean logit."""
    if not (temperature > 0.0 and math.isfinite(temperature)):
        raise ValueError(f"an energy temperature must be a positive number, got {temperature}")
    return temperature * torch.logsumexp(logits.detach().cpu().double() / temperature, dim=-1)


def negative_entropy_score(logits: Tensor) -> Tensor:
    """The negative entropy of each row's softmax, sum_k p_k log p_k (0 for a one-hot softmax,
    -log m for a uniform one; float64). log p is taken as z_k - logsumexp z, finite however small
    p_k, so a probability that underflows to 0 adds 0."""
    parts = softmax_parts(logits.detach().cpu().double())
    log_probabilities = parts.shifted - parts.total.log()[:, None]
    probabilities = parts.exponentials / parts.total[:, None]
    return (probabilities * log_probabilities).sum(dim=-1)


#: The scores :func:`ood_figures` reports, by the name in its keys; each higher = more ID.
SCORES: dict[str, Callable[[Tensor], Tensor]] = {
    "msp": msp_score,
    "max_logit": max_logit_score,
    "energy": energy_score,
    "entropy": negative_entropy_score,
}


def _scores(in_scores: Tensor, out_scores: Tensor) -> tuple[numpy.ndarray, numpy.ndarray]:
    in_array = in_scores.detach().cpu().double().reshape(-1).numpy()
    out_array = out_scores.detach().cpu().double().reshape(-1).numpy()
    if len(in_array) == 0 or len(out_array) == 0:
        counts = f"{len(in_array)} and {len(out_array)}"
        raise ValueError(f"OOD detection needs in- and out-of-distribution examples, got {counts}")
    if numpy.isnan(in_array).any() or numpy.isnan(out_array).any():
        raise ValueError("an OOD score is nan: no threshold can order it")
    return in_array, out_array


def fpr_at_tpr(in_scores: Tensor, out_scores: Tensor, tpr: float = TPR) -> float:
    """The false-positive rate at ``tpr`` (in (0, 1]; 0.95 by default): with t the highest
    threshold at which at least ``tpr`` of the ID scores are >= t (t is then the
    ceil(tpr * N_in)-th highest ID score), the share of OOD scores >= t. An OOD example tied with
    the threshold is accepted, as the ID examples tied with it are."""
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"a true-positive rate must be in (0, 1], got {tpr}")
    in_array, out_array = _scores(in_scores, out_scores)
    # A hair of slack, so that a count that is whole in exact arithmetic but rounds above it in
    # floating point is not taken for the next one.
    needed = max(1, math.ceil(tpr * len(in_array) - 1e-9))
    threshold = numpy.sort(in_array)[::-1][needed - 1]
    return float(numpy.mean(out_array >= threshold))


def detection_figures(in_scores: Tensor, out_scores: Tensor, tpr: float = TPR) -> dict[str, float]:
    """AUROC, AUPR-in, AUPR-out and the FPR at ``tpr`` of one score (higher = more ID), named
    ``auroc``, ``aupr_in``, ``aupr_out`` and ``fpr95`` (``fpr<tpr in percent>``), each a fraction
    (0-1, as scikit-learn gives them: :func:`ood_figures` records them in percent)."""
    # lazy: scikit-learn takes seconds to import and only this function needs it
    from sklearn.metrics import average_precision_score, roc_auc_score

    in_array, out_array = _scores(in_scores, out_scores)
    scores = numpy.concatenate([in_array, out_array])
    in_distribution = numpy.concatenate([numpy.ones(len(in_array)), numpy.zeros(len(out_array))])
    return {
        "auroc": float(roc_auc_score(in_distribution, scores)),
        "aupr_in": float(average_precision_score(in_distribution, scores)),
        "aupr_out": float(average_precision_score(1.0 - in_distribution, -scores)),
        f"fpr{100.0 * tpr:g}".replace(".", "_"): fpr_at_tpr(in_scores, out_scores, tpr),
    }


def ood_figures(
    in_logits: Tensor, out_logits: Tensor, tpr: float = TPR, *, energy_temperature: float = 1.0
) -> dict[str, float]:
    """Every score of :data:`SCORES` judged by :func:`detection_figures`, for the logits of an ID
    split (``in_logits``, ``(N_in, m)``, e.g. the test split) and of an OOD set (``out_logits``,
    ``(N_out, m)``), as one flat dict of floats named ``ood_<score>_<figure>``: ``ood_msp_auroc``,
    ``ood_energy_fpr95``, ``ood_max_logit_aupr_in``, ``ood_entropy_aupr_out``, ... The energy
    score at ``energy_temperature`` (:func:`energy_score`; 1 by default). Empty where a logit is
    not finite (a diverged model: no score to rank)."""
    if not (energy_temperature > 0.0 and math.isfinite(energy_temperature)):
        raise ValueError(f"an energy temperature must be a positive number, got {energy_temperature}")
    if in_logits.shape[-1] != out_logits.shape[-1]:
        raise ValueError(f"OOD logits of {out_logits.shape[-1]} classes for a model of {in_logits.shape[-1]}")
    if not (bool(torch.isfinite(in_logits).all()) and bool(torch.isfinite(out_logits).all())):
        return {}
    figures: dict[str, float] = {}
    scores = {**SCORES, "energy": functools.partial(energy_score, temperature=energy_temperature)}
    for name, score in scores.items():
        for figure, value in detection_figures(score(in_logits), score(out_logits), tpr).items():
            figures[f"ood_{name}_{figure}"] = value
    return in_units(figures)
