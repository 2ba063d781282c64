"""Split-conformal prediction sets (Angelopoulos & Bates 2021, "A gentle introduction to
conformal prediction and distribution-free uncertainty quantification"): sets of classes that
contain the label with probability at least a chosen level, whatever the model, on exchangeable
data.

With p = softmax(z / T) and a score s(x, y) that is high where y conforms badly to x
(:func:`class_scores`), the scores of the labels of n calibration examples (a dev split) give the
threshold q = the k-th smallest of them, k = ceil((n + 1) level) (:func:`conformal_threshold`), and
a new input's set is C(x) = {y : s(x, y) <= q} (:func:`prediction_sets`). Then
P(y in C(x)) >= level (Angelopoulos & Bates, Theorem 1); with continuous (randomised) scores it is
also at most level + 1 / (n + 1). The level is 1 - alpha in their notation.

Scores (:data:`METHODS`):

- ``thr`` (THR, also called LAC: least ambiguous set-valued classifiers, Sadinle et al. 2019):
  s(x, y) = 1 - p_y;
- ``aps`` (adaptive prediction sets; Romano et al. 2020): s(x, y) = rho(y) + p_y, with
  rho(y) = sum_k p_k [p_k > p_y] the mass of the classes more probable than y: the sorted
  probabilities summed down to and including y, classes tied with y left out so that no order
  among equal probabilities is chosen;
- ``raps`` (regularised APS; Angelopoulos et al. 2021): the APS score plus
  lambda * max(0, o(y) - k_reg), o(y) = |{k : p_k >= p_y}| the rank of y (ties ranked last),
  lambda = 0.01 and k_reg = 5 by default, the Gentle Introduction's example values.

APS and RAPS are not randomised by default; given a ``generator`` they are, as Romano et al. and
Angelopoulos et al. define it: p_y in the score is replaced by u * p_y, with u ~ Uniform(0, 1) drawn
once per example (the same u for every class of it).
"""

from __future__ import annotations

import math

import numpy
import torch
from torch import Tensor

from .figures import in_units

#: The conformal scores, by name.
METHODS = ("thr", "aps", "raps")

#: The target coverage, unless told otherwise (alpha = 0.1).
LEVEL = 0.9

#: RAPS's regularisation: lambda and k_reg of the Gentle Introduction's example.
LAMBDA = 0.01
K_REG = 5


def check_level(level: float) -> float:
    """``level`` if it is a coverage strictly between 0 and 1, else a ValueError saying so."""
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"a conformal level is a target coverage in (0, 1), such as 0.9; got {level}")
    return float(level)


def probabilities(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """softmax(logits / temperature), row by row, in float64 on the CPU."""
    if not (temperature > 0.0 and math.isfinite(temperature)):
        raise ValueError(f"a temperature must be a positive number, got {temperature}")
    return torch.softmax(logits.detach().cpu().double() / temperature, dim=-1)


def class_scores(
    probs: Tensor,
    method: str = "thr",
    *,
    lam: float = LAMBDA,
    k_reg: int = K_REG,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The score s(x, y) of every class y of every row of ``probs`` ``(N, m)``, ``(N, m)``: higher
    conforms worse (the module's docstring gives each ``method``'s formula); randomised with
    ``generator`` where one is given (APS and RAPS)."""
    if method not in METHODS:
        raise ValueError(f"unknown conformal score {method!r}; choose one of {', '.join(METHODS)}")
    if method == "thr":
        return 1.0 - probs
    ascending = probs.sort(dim=-1).values
    classes = probs.shape[-1]
    # How many classes are more probable than each (their summed mass is rho), and how many are at
    # least as probable (its rank, ties last): counted in each row's sorted probabilities.
    above = classes - torch.searchsorted(ascending, probs, right=True)
    rank = classes - torch.searchsorted(ascending, probs, right=False)
    descending_mass = torch.cat([probs.new_zeros(len(probs), 1), ascending.flip(-1).cumsum(-1)], dim=-1)
    rho = descending_mass.gather(-1, above)
    own = probs
    if generator is not None:
        own = probs * torch.rand(len(probs), 1, generator=generator, dtype=probs.dtype)
    scores = rho + own
    if method == "raps":
        scores = scores + lam * (rank - k_reg).clamp(min=0).to(probs.dtype)
    return scores


def _labels(labels: Tensor, rows: int, classes: int) -> Tensor:
    """``labels`` as a CPU int64 column, one per row, each a class index; else a ValueError."""
    labels = labels.detach().cpu().long()
    if len(labels) != rows:
        raise ValueError(f"{len(labels)} labels for {rows} predictions")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise ValueError(f"a label is outside the {classes} classes")
    return labels[:, None]


def label_scores(probs: Tensor, labels: Tensor, method: str = "thr", **options) -> Tensor:
    """s(x, y) of each row's label ``labels`` ``(N,)``: :func:`class_scores` at the label."""
    column = _labels(labels, len(probs), probs.shape[-1])
    return class_scores(probs, method, **options).gather(-1, column).squeeze(-1)


def conformal_threshold(scores: Tensor, level: float = LEVEL) -> float:
    """The split-conformal threshold of the calibration ``scores`` ``(n,)``: the k-th smallest,
    k = ceil((n + 1) * level) (the empirical quantile at k / n with the finite-sample correction of
    Angelopoulos & Bates, Section 1.1); infinity where k > n (too few examples for the level: every
    set is every class). numpy's ``quantile(scores, k / n, method="higher")``, as in their code
    listing, gives one order statistic higher where (n - 1) k / n is not whole; this is the k-th,
    the one their Theorem 1 bounds from both sides."""
    level = check_level(level)
    values = numpy.sort(scores.detach().cpu().double().reshape(-1).numpy())
    if len(values) == 0:
        raise ValueError("conformal calibration needs at least one example")
    # A hair of slack, so that a product whole in exact arithmetic is not rounded up to the next.
    needed = math.ceil((len(values) + 1) * level - 1e-9)
    return math.inf if needed > len(values) else float(values[needed - 1])


def calibrate_threshold(
    logits: Tensor,
    labels: Tensor,
    level: float = LEVEL,
    method: str = "thr",
    *,
    temperature: float = 1.0,
    **options,
) -> float:
    """The threshold q of ``method`` calibrated on held-out ``logits`` and ``labels`` (a dev split)
    for the target coverage ``level``: :func:`conformal_threshold` of their label scores, with the
    probabilities softmax(logits / temperature). ``options``: ``lam``, ``k_reg``, ``generator``
    (:func:`class_scores`)."""
    check_level(level)
    scores = label_scores(probabilities(logits, temperature), labels, method, **options)
    return conformal_threshold(scores, level)


def prediction_sets(
    logits: Tensor, threshold: float, method: str = "thr", *, temperature: float = 1.0, **options
) -> Tensor:
    """The sets C(x) = {y : s(x, y) <= threshold} of new ``logits`` ``(N, m)``, as an ``(N, m)``
    boolean mask (class y is in row i's set where ``[i, y]`` is True), with the temperature and
    score the threshold was calibrated with. An APS set that is not randomised may be empty: where
    the top probability alone exceeds the threshold."""
    return class_scores(probabilities(logits, temperature), method, **options) <= threshold


def coverage_and_size(sets: Tensor, labels: Tensor) -> tuple[float, float]:
    """The share of rows whose set holds their label, and the mean number of classes in a set."""
    if len(sets) == 0:
        raise ValueError("coverage of no examples")
    hits = sets.gather(-1, _labels(labels, len(sets), sets.shape[-1])).squeeze(-1)
    return float(hits.double().mean()), float(sets.sum(-1).double().mean())


def conformal_figures(
    dev_logits: Tensor,
    dev_labels: Tensor,
    test_logits: Tensor,
    test_labels: Tensor,
    level: float = LEVEL,
    *,
    temperature: float | None = None,
    randomized: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """Each score of :data:`METHODS` calibrated on the dev split and judged on the test split, as
    one flat dict of floats: ``conformal_<method>_coverage`` (the test share whose set holds the
    label, in percent) and ``conformal_<method>_set_size`` (the mean set size), with
    ``conformal_level`` (the target coverage, in percent).
    Probabilities are softmax(logits / temperature) (T = 1 where none is given). ``randomized``:
    APS and RAPS draw their u from one generator seeded with ``seed``, dev first, then test.
    Empty where a logit is not finite (a diverged model)."""
    level = check_level(level)
    if not (bool(torch.isfinite(dev_logits).all()) and bool(torch.isfinite(test_logits).all())):
        return {}
    scale = 1.0 if temperature is None else temperature
    figures = {"conformal_level": level}
    for method in METHODS:
        generator = torch.Generator().manual_seed(seed) if randomized and method != "thr" else None
        threshold = calibrate_threshold(
            dev_logits, dev_labels, level, method, temperature=scale, generator=generator
        )
        sets = prediction_sets(test_logits, threshold, method, temperature=scale, generator=generator)
        coverage, size = coverage_and_size(sets, test_labels)
        figures[f"conformal_{method}_coverage"] = coverage
        figures[f"conformal_{method}_set_size"] = size
    return in_units(figures)
