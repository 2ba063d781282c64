"""Selective classification: how well a confidence score ranks a classifier's errors below its
right predictions, so that abstaining on the least confident inputs removes errors first.

A selective classifier predicts where its confidence is at least a threshold and abstains
elsewhere (Geifman & El-Yaniv 2017, "Selective classification for deep neural networks"). Over N
examples, with the prediction right or wrong for each, the figures are (shares, 0-1, as these
functions return them; in percent in the figures a run records, :func:`selective_figures`):

- the **risk-coverage curve** (:func:`risk_coverage_curve`): at each distinct confidence t, the
  coverage (the share of examples with confidence >= t) and the selective risk (the share of
  those that are wrong);
- **AURC** (:func:`aurc`): the mean over k = 1 .. N of the selective risk of the k most confident
  examples, err(k) / k;
- **AUGRC** (:func:`augrc`; Traub et al. 2024, "Overcoming common flaws in the evaluation of
  selective classification systems"): the mean over k of the generalised risk err(k) / N, the share
  of all examples that are accepted and wrong;
- **risk at a coverage** (:func:`risk_at_coverage`) and **coverage at a risk**
  (:func:`coverage_at_risk`), read off the curve;
- the **risk at fixed coverages** (:func:`risk_at_coverages`): err(k) / k of the k most confident at
  each of a grid of coverages, the curve whose area is the AURC, one length whatever N.

Ties. Examples of equal confidence are accepted or rejected together: the curve has one point per
distinct confidence, and no figure depends on the order of the examples. Inside a block of b tied
examples holding e errors, err(k) counts the block's errors as spread evenly (j e / b after j of its
examples): AURC and AUGRC are then exactly their mean over every order of the tied examples.

Confidence scores from logits (:func:`max_softmax`, :func:`pnorm_confidence`), the figures a run
reports for a split (:func:`selective_figures`) and the curve it keeps (:func:`msp_risk_curve`) are
at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy
import torch
from torch import Tensor

from .figures import RISK_CURVE, in_units
from .softmax import softmax_parts

#: The coverage :func:`risk_at_coverage` reads the risk at, and the risk :func:`coverage_at_risk`
#: reads the coverage at, unless told otherwise.
COVERAGE = 0.8
RISK = 0.05

#: The coverages of a run's recorded risk-coverage curve (:func:`msp_risk_curve`): 0, 0.01, ..., 1.
CURVE_COVERAGES = numpy.linspace(0.0, 1.0, 101)

#: One number per example: a tensor, an array or a list.
Values = Tensor | numpy.ndarray | Sequence[float]

#: The p-norms :func:`choose_norm_p` tries: 1 to 10, the grid Xia et al.'s released code searches.
NORM_P_GRID = tuple(range(1, 11))


def _vector(values: Values, name: str) -> numpy.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    array = numpy.asarray(values, dtype=numpy.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one number per example, got shape {tuple(array.shape)}")
    return array


def _examples(confidence: Values, correct: Values) -> tuple[numpy.ndarray, numpy.ndarray]:
    """``confidence`` and ``correct`` as float64 vectors of one length, at least one example, no
    nan confidence; ``correct`` 1.0 or 0.0."""
    confidence, correct = _vector(confidence, "confidence"), _vector(correct, "correct")
    if len(confidence) != len(correct):
        raise ValueError(f"{len(confidence)} confidences for {len(correct)} predictions")
    if len(confidence) == 0:
        raise ValueError("selective classification of no examples")
    if numpy.isnan(confidence).any():
        raise ValueError("a confidence is nan: no order to abstain in")
    if not numpy.isin(correct, (0.0, 1.0)).all():
        raise ValueError("correct must hold 1 (right) or 0 (wrong) per prediction")
    return confidence, correct


class TieBlocks(NamedTuple):
    """The examples grouped by distinct confidence, most confident first: each block's
    ``threshold`` (its confidence), ``size`` (examples) and ``errors`` (wrong predictions)."""

    threshold: numpy.ndarray
    size: numpy.ndarray
    errors: numpy.ndarray


def tie_blocks(confidence: Values, correct: Values) -> TieBlocks:
    """The :class:`TieBlocks` of ``confidence`` (higher = more confident) and ``correct``."""
    confidence, correct = _examples(confidence, correct)
    # The order among equal confidences does not matter: they are summed as one block.
    order = numpy.argsort(-confidence, kind="stable")
    ordered = confidence[order]
    starts = numpy.flatnonzero(numpy.r_[True, ordered[1:] != ordered[:-1]])
    size = numpy.diff(numpy.r_[starts, len(ordered)])
    errors = numpy.add.reduceat(1.0 - correct[order], starts)
    return TieBlocks(ordered[starts], size, errors)


def risk_coverage_curve(
    confidence: Values, correct: Values
) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """The risk-coverage curve: for each distinct confidence t, highest first, the coverage
    |{i : c_i >= t}| / N, the selective risk (the share of those predicted wrong) and t itself, as
    three arrays ``(coverage, risk, threshold)``. Coverage rises to 1 at the last point, whose risk
    is the error rate."""
    blocks = tie_blocks(confidence, correct)
    accepted = numpy.cumsum(blocks.size)
    return accepted / accepted[-1], numpy.cumsum(blocks.errors) / accepted, blocks.threshold


def errors_in_top(confidence: Values, correct: Values) -> numpy.ndarray:
    """err(k) for k = 1 .. N: the errors among the k most confident examples, a block of tied
    examples counting its errors as spread evenly over it (j * e / b after j of its b examples,
    e of them wrong): the mean of err(k) over every order of the tied examples."""
    blocks = tie_blocks(confidence, correct)
    block = numpy.repeat(numpy.arange(len(blocks.size)), blocks.size)
    before = (numpy.cumsum(blocks.size) - blocks.size)[block]
    errors_before = (numpy.cumsum(blocks.errors) - blocks.errors)[block]
    taken = numpy.arange(1, len(block) + 1) - before
    return errors_before + taken * blocks.errors[block] / blocks.size[block]


def aurc(confidence: Values, correct: Values) -> float:
    """The area under the risk-coverage curve (Geifman & El-Yaniv 2017): the mean selective risk
    over the coverages k / N, k = 1 .. N,

        AURC = (1 / N) sum_k err(k) / k

    with err(k) of :func:`errors_in_top` (ties spread evenly). 0 only without errors; for a given
    accuracy it is least when every wrong prediction is less confident than every right one, and
    the error rate when the confidence is constant."""
    errors = errors_in_top(confidence, correct)
    return float(numpy.mean(errors / numpy.arange(1, len(errors) + 1)))


def augrc(confidence: Values, correct: Values) -> float:
    """The area under the generalised risk-coverage curve (Traub et al. 2024): the mean over
    k = 1 .. N of the share of all N examples that are among the k most confident and wrong,

        AUGRC = (1 / N) sum_k err(k) / N

    (ties spread evenly, :func:`errors_in_top`). Without ties it equals Traub et al.'s identity
    (1 - AUROC_f) acc (1 - acc) + (1 - acc)^2 / 2 plus (1 - acc) / (2N), the half step a mean over
    k = 1 .. N adds to the area under the continuous curve (AUROC_f: how well the confidence
    separates right from wrong; acc: the accuracy)."""
    errors = errors_in_top(confidence, correct)
    return float(numpy.mean(errors) / len(errors))


def risk_at_coverages(
    confidence: Values, correct: Values, coverages: Sequence[float] | numpy.ndarray = CURVE_COVERAGES
) -> numpy.ndarray:
    """The selective risk err(k) / k of the k = max(1, ceil(c N)) most confident examples at each
    coverage c (in [0, 1]; by default :data:`CURVE_COVERAGES`), ties spread evenly as AURC counts
    them (:func:`errors_in_top`): a curve of one length whatever N, which runs of different sizes
    average point by point. At the coverages k / N, k = 1 .. N, its mean is the AURC."""
    coverages = numpy.asarray(coverages, dtype=numpy.float64)
    outside = coverages[~((coverages >= 0.0) & (coverages <= 1.0))]  # nan too
    if len(outside):
        raise ValueError(f"a coverage must be in [0, 1], got {outside[0]}")
    errors = errors_in_top(confidence, correct)
    # The same hair of slack as risk_at_coverage: 0.07 of 100 examples is 7 of them, not 8.
    taken = numpy.clip(numpy.ceil((coverages - 1e-12) * len(errors)), 1, len(errors)).astype(numpy.int64)
    return errors[taken - 1] / taken


def _share(value: float, name: str, *, zero: bool) -> float:
    low_ok = value >= 0.0 if zero else value > 0.0
    if not (low_ok and value <= 1.0):
        bounds = "[0, 1]" if zero else "(0, 1]"
        raise ValueError(f"{name} must be in {bounds}, got {value}")
    return float(value)


def risk_at_coverage(confidence: Values, correct: Values, coverage: float = COVERAGE) -> float:
    """The selective risk at the highest threshold that covers at least ``coverage`` of the
    examples (in (0, 1]; 0.8 by default): the point of :func:`risk_coverage_curve` with the
    smallest coverage >= ``coverage``. Ties are accepted together, so the coverage reached may
    exceed the one asked for."""
    coverage = _share(coverage, "coverage", zero=False)
    covered, risk, _ = risk_coverage_curve(confidence, correct)
    # A hair of slack, so that a coverage written as a rounded product (0.1 * 7) still reaches 7 of 10.
    return float(risk[numpy.argmax(covered >= coverage - 1e-12)])


def coverage_at_risk(confidence: Values, correct: Values, risk: float = RISK) -> float:
    """The largest coverage of :func:`risk_coverage_curve` whose selective risk is at most
    ``risk`` (in [0, 1]; 0.05 by default); 0.0 where no threshold reaches it (the most confident
    block alone is too often wrong)."""
    risk = _share(risk, "risk", zero=True)
    covered, risks, _ = risk_coverage_curve(confidence, correct)
    within = risks <= risk + 1e-12
    return float(covered[within].max()) if within.any() else 0.0


def correct_predictions(logits: Tensor, labels: Tensor) -> Tensor:
    """Whether each row's argmax (the first of equals, as the error counts it) is its label."""
    return softmax_parts(logits.detach().cpu().double()).predictions == labels.detach().cpu().long()


def max_softmax(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The maximum softmax probability (MSP; Hendrycks & Gimpel 2017) of each row of
    ``logits / temperature``: max_k softmax(z / T)_k, in float64 (1.0 for a far lead)."""
    if not (temperature > 0.0 and math.isfinite(temperature)):
        raise ValueError(f"a temperature must be a positive number, got {temperature}")
    return 1.0 / softmax_parts(logits.detach().cpu().double() / temperature).total


def pnorm_confidence(logits: Tensor, p: float) -> Tensor:
    """MaxLogit-pNorm (Cattelan & Silva 2024, "How to fix a broken confidence estimator"), the
    post-hoc logit normalisation with which Xia et al. (ICLR 2025, "Towards understanding why label
    smoothing degrades selective classification and how to fix it", Section 5) repair the
    selective classification of label-smoothed models: with each row centred, u = z - mean_k z_k,

        s(z) = max_k u_k / ||u||_p,    ||u||_p = (sum_k |u_k|^p)^(1/p)

    in [0, 1]; a row of equal logits (u = 0) scores 0, the least confident (our choice: 0 / 0 is
    undefined; Cattelan & Silva's code clamps the norm, which gives the same). Computed in float64,
    as Xia et al.'s code does, and rounded to 12 decimals (our choice): scores equal in exact
    arithmetic then tie instead of being ordered by rounding error (with two classes every row
    scores 2^(-1/p), which ranks nothing)."""
    if not p > 0:
        raise ValueError(f"a p-norm needs p > 0, got {p}")
    logits = logits.detach().cpu().double()
    centred = logits - logits.mean(dim=-1, keepdim=True)
    norm = torch.linalg.vector_norm(centred, ord=p, dim=-1)
    top = centred.max(dim=-1).values
    score = torch.where(norm > 0, top / norm.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
    return score.round(decimals=12)


def choose_norm_p(logits: Tensor, labels: Tensor, grid: Sequence[float] = NORM_P_GRID) -> float:
    """The p of :func:`pnorm_confidence` with the lowest AURC on held-out ``logits`` (a dev
    split's; never the split the figures are reported on), from ``grid`` (1 .. 10, as Xia et al.'s
    released code searches); the first p of the grid among equals."""
    if not grid:
        raise ValueError("choose_norm_p needs at least one p to try")
    correct = correct_predictions(logits, labels)
    scores = [aurc(pnorm_confidence(logits, p), correct) for p in grid]
    return float(grid[int(numpy.argmin(scores))])


def _percent_name(share: float) -> str:
    return f"{100.0 * share:g}".replace(".", "_")


def confidence_figures(
    confidence: Values, correct: Values, prefix: str, coverage: float = COVERAGE, risk: float = RISK
) -> dict[str, float]:
    """AURC, AUGRC, risk at ``coverage`` and coverage at ``risk`` of one confidence score, named
    ``<prefix>_aurc``, ``<prefix>_augrc``, ``<prefix>_risk_at_80``, ``<prefix>_coverage_at_5``
    (the numbers: ``coverage`` and ``risk`` in percent, a decimal point written ``_``). Each in
    its declared unit, percent (:func:`~labelemb.metrics.figures.in_units`)."""
    shares = {
        "aurc": aurc(confidence, correct),
        "augrc": augrc(confidence, correct),
        f"risk_at_{_percent_name(coverage)}": risk_at_coverage(confidence, correct, coverage),
        f"coverage_at_{_percent_name(risk)}": coverage_at_risk(confidence, correct, risk),
    }
    return in_units({f"{prefix}_{name}": share for name, share in shares.items()})


def msp_risk_curve(logits: Tensor, labels: Tensor) -> dict[str, list[float]]:
    """``{RISK_CURVE: [...]}``: the selective risk of the max-softmax confidence of ``logits``
    ``(N, m)`` for ``labels`` at each of :data:`CURVE_COVERAGES` (:func:`risk_at_coverages`, in
    percent), the curve a report draws; empty where a logit is not finite, as
    :func:`selective_figures`."""
    if not bool(torch.isfinite(logits).all()):
        return {}
    curve = risk_at_coverages(max_softmax(logits), correct_predictions(logits, labels))
    return in_units({RISK_CURVE: curve})


def selective_figures(
    logits: Tensor,
    labels: Tensor,
    *,
    temperature: float | None = None,
    norm_p: float | None = None,
    coverage: float = COVERAGE,
    risk: float = RISK,
) -> dict[str, float]:
    """The selective-classification figures of a split's ``logits`` ``(N, m)`` for ``labels``
    ``(N,)``, as one flat dict of floats (shares in percent, 0-100), for three confidence scores:

    - ``selective_msp_*``: the maximum softmax probability, raw;
    - ``selective_msp_scaled_*``: the same of ``logits / temperature`` (a temperature fit on the
      dev split, :func:`labelemb.metrics.fit_temperature`), where one is given;
    - ``selective_pnorm_*``: :func:`pnorm_confidence` with ``norm_p`` (chosen on the dev split,
      :func:`choose_norm_p`), where one is given, and ``selective_pnorm_p``, the p used;

    each with ``_aurc``, ``_augrc``, ``_risk_at_80`` and ``_coverage_at_5``
    (:func:`confidence_figures`). The prediction is the argmax, right or wrong as the error counts
    it. Empty where a logit is not finite (a diverged model: no ranking to judge)."""
    if not bool(torch.isfinite(logits).all()):
        return {}
    correct = correct_predictions(logits, labels)
    figures = confidence_figures(max_softmax(logits), correct, "selective_msp", coverage, risk)
    if temperature is not None:
        scaled = max_softmax(logits, temperature)
        figures.update(confidence_figures(scaled, correct, "selective_msp_scaled", coverage, risk))
    if norm_p is not None:
        normalised = pnorm_confidence(logits, norm_p)
        figures.update(confidence_figures(normalised, correct, "selective_pnorm", coverage, risk))
        figures["selective_pnorm_p"] = float(norm_p)
    return figures
