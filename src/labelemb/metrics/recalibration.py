"""Post-hoc recalibration past one temperature: maps fit on held-out (dev) logits and applied to
others (test), each turning a row of logits z (m classes) into probabilities q.

- **vector scaling** (Guo et al. 2017, Section 4.2): q = softmax(w * z + b), w and b in R^m;
- **Dirichlet calibration** (Kull et al. 2019, "Beyond temperature scaling", Section 3): matrix
  scaling of the log-probabilities, q = softmax(W log softmax(z) + b), W in R^(m x m), with their
  off-diagonal and intercept regularisation (ODIR);
- **histogram binning** (Zadrozny & Elkan 2001; one-vs-rest as Guo et al. 2017, Section 4.1): each
  class's probability p_k = softmax(z)_k replaced by the frequency of that class among the dev
  examples whose p_k falls in the same of :data:`~labelemb.metrics.calibration.BINS` equal-width
  bins, then the row renormalised;
- **isotonic regression** (Zadrozny & Elkan 2002; one-vs-rest): each p_k replaced by a
  non-decreasing function of it fit to [y = k] by least squares (scikit-learn's
  ``IsotonicRegression``), then the row renormalised.

Both scaling maps minimise the mean NLL on dev plus a penalty
(:func:`~labelemb.metrics.scaling_fit.affine_penalty`) that keeps the minimum unique and finite where
plain NLL has none (a dev split predicted all right, a class absent from it), by Newton's method
(:func:`~labelemb.metrics.scaling_fit.fit_scaling`: the Hessian built for a few parameters, conjugate
gradients for many). A one-vs-rest row that maps to all zeros becomes uniform, and every
one-vs-rest probability is floored at :data:`PROBABILITY_FLOOR` (an exact 0 would make the NLL
infinite).
:func:`recalibration_figures` fits each map on dev and judges the test probabilities as
:func:`~labelemb.metrics.measure_calibration` judges logits; :func:`cross_fitted_ece` judges a map
on the dev split alone, fit on one half and measured on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy
import torch
from torch import Tensor

from .calibration import BINS, measure_calibration
from .figures import in_units
from .scaling_fit import fit_scaling

#: The maps, by the name their figures carry (``recal_dirichlet_ece``).
MAPS = ("vector", "dirichlet", "binning", "isotonic")
#: The figures recorded per map: :data:`~labelemb.metrics.FIGURES` but the MCE, and the error (%).
MAP_FIGURES = ("ece", "adaece", "classwise_ece", "nll", "brier", "error")
#: The least probability a one-vs-rest map gives a class (our choice; scaling maps need none).
PROBABILITY_FLOOR = 1e-6

#: A fitted map: logits (N, m) -> log-probabilities (N, m), finite.
Map = Callable[[Tensor], Tensor]


def check_dev(logits: Tensor, labels: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """``logits`` and ``labels`` as float64 and int64 on the CPU, or one clear ValueError: a map
    needs finite logits of examples of at least two classes, and binning one example a bin."""
    if name not in MAPS:
        raise ValueError(f"{name!r} is no recalibration map: choose one of {', '.join(MAPS)}")
    logits, labels = logits.detach().cpu().double(), labels.detach().cpu().long()
    if logits.ndim != 2 or len(logits) != len(labels):
        shape = tuple(logits.shape)
        raise ValueError(f"{name} needs logits (N, m) and N labels, got {shape} and {len(labels)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} cannot be fit on non-finite logits (a diverged model's)")
    present = labels.unique()
    if len(present) < 2:
        only = f"only class {int(present[0])}" if len(present) else "no examples"
        raise ValueError(
            f"{name} cannot be fit on a dev split of {only}: it needs examples of two classes or more"
        )
    if name == "binning" and len(labels) < BINS:
        raise ValueError(
            f"binning cannot be fit on {len(labels)} dev examples: it needs at least {BINS}, one a bin; "
            "use a larger dev split"
        )
    return logits, labels


def _scaled(inputs: Tensor, weights: Tensor, bias: Tensor) -> Tensor:
    return (inputs * weights if weights.ndim == 1 else inputs @ weights.T) + bias


def _one_vs_rest(calibrated: Tensor) -> Tensor:
    """Per-class probabilities renormalised to rows of sum 1 (a row of zeros: uniform), floored at
    :data:`PROBABILITY_FLOOR` and renormalised again; returned as their logarithm."""
    totals = calibrated.sum(-1, keepdim=True)
    rows = torch.where(totals > 0, calibrated / totals.clamp(min=1e-300), 1.0 / calibrated.shape[-1])
    rows = rows.clamp(min=PROBABILITY_FLOOR)
    return (rows / rows.sum(-1, keepdim=True)).log()


def binning_bin(probabilities: Tensor, bins: int = BINS) -> Tensor:
    """Bin b of ``bins`` holds (b / bins, (b + 1) / bins], as the ECE's bins; 0 goes to the first."""
    return probabilities.mul(bins).ceil().clamp(1, bins).sub(1).long()


def fit_binning(logits: Tensor, labels: Tensor, bins: int = BINS) -> Map:
    """Histogram binning, one-vs-rest: per class k and bin b the frequency of class k among the
    dev examples whose softmax p_k falls in bin b; a bin no dev example fell in keeps p_k."""
    probabilities = logits.softmax(-1)
    classes = logits.shape[-1]
    flat = (binning_bin(probabilities, bins) + torch.arange(classes) * bins).reshape(-1)
    hits = torch.nn.functional.one_hot(labels, classes).double().reshape(-1)
    counts = torch.bincount(flat, minlength=classes * bins).double()
    frequency = torch.bincount(flat, weights=hits, minlength=classes * bins) / counts.clamp(min=1)

    def apply(new_logits: Tensor) -> Tensor:
        new = new_logits.detach().cpu().double().softmax(-1)
        index = binning_bin(new, bins) + torch.arange(classes) * bins
        return _one_vs_rest(torch.where(counts[index] > 0, frequency[index], new))

    return apply


def fit_isotonic(logits: Tensor, labels: Tensor) -> Map:
    """Isotonic regression, one-vs-rest: per class k, scikit-learn's ``IsotonicRegression`` (tied
    probabilities pooled, predictions between fitted points interpolated, clipped outside them)
    of [y = k] on p_k, in [0, 1]."""
    # lazy: scikit-learn takes seconds to import and only this function needs it
    from sklearn.isotonic import IsotonicRegression  # kept out of the command line's start

    probabilities = logits.softmax(-1).numpy()
    targets = torch.nn.functional.one_hot(labels, logits.shape[-1]).double().numpy()
    fits = [
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probabilities[:, k], targets[:, k])
        for k in range(logits.shape[-1])
    ]

    def apply(new_logits: Tensor) -> Tensor:
        new = new_logits.detach().cpu().double().softmax(-1).numpy()
        mapped = numpy.stack([fit.predict(new[:, k]) for k, fit in enumerate(fits)], axis=-1)
        return _one_vs_rest(torch.from_numpy(mapped))

    return apply


def fit_map(name: str, logits: Tensor, labels: Tensor) -> Map:
    """The map ``name`` (one of :data:`MAPS`) fit on ``logits`` ``(N, m)`` and ``labels`` ``(N,)``
    (held-out ones: a dev split's), as a function from logits to finite log-probabilities; one
    clear ValueError where it cannot be fit (:func:`check_dev`)."""
    logits, labels = check_dev(logits, labels, name)
    if name == "binning":
        return fit_binning(logits, labels)
    if name == "isotonic":
        return fit_isotonic(logits, labels)
    matrix = name == "dirichlet"
    inputs = logits.log_softmax(-1) if matrix else logits
    weights, bias = fit_scaling(inputs, labels, matrix)

    def apply(new_logits: Tensor) -> Tensor:
        new = new_logits.detach().cpu().double()
        return _scaled(new.log_softmax(-1) if matrix else new, weights, bias).log_softmax(-1)

    return apply


def map_figures(log_probabilities: Tensor, labels: Tensor, prefix: str) -> dict[str, float]:
    """:data:`MAP_FIGURES` of recalibrated predictions, named ``<prefix>_<figure>``: the figures of
    :func:`~labelemb.metrics.measure_calibration` (softmax of log-probabilities is the
    probabilities) and the error (%) of their argmax, which a per-class map may move."""
    calibration = measure_calibration(log_probabilities, labels).figures()
    figures = {f"{prefix}_{figure}": calibration[figure] for figure in MAP_FIGURES if figure in calibration}
    wrong = log_probabilities.argmax(-1) != labels.detach().cpu().long()
    return {**figures, **in_units({f"{prefix}_error": float(wrong.double().mean())})}


def recalibration_figures(
    dev_logits: Tensor,
    dev_labels: Tensor,
    test_logits: Tensor,
    test_labels: Tensor,
    maps: Sequence[str] = MAPS,
) -> dict[str, float]:
    """Each map of ``maps`` fit on the dev split and its test predictions judged
    (:func:`map_figures`), as one flat dict ``recal_<map>_<figure>`` (``recal_isotonic_ece``, ...);
    empty where a logit is not finite (a diverged model); one clear ValueError where a map cannot
    be fit on this dev split."""
    if not (bool(torch.isfinite(dev_logits).all()) and bool(torch.isfinite(test_logits).all())):
        return {}
    figures: dict[str, float] = {}
    for name in maps:
        fitted = fit_map(name, dev_logits, dev_labels)
        figures.update(map_figures(fitted(test_logits), test_labels, f"recal_{name}"))
    return figures


def cross_fitted_ece(logits: Tensor, labels: Tensor, name: str, seed: int = 0) -> float:
    """The ECE (%) of map ``name`` judged on a split alone: the split cut in two halves at random
    (``seed``), the map fit on each half and applied to the other, the ECE of all the predictions
    so made (in-sample, binning would score its own bins). What ``tune --objective`` reads."""
    labels = labels.detach().cpu().long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    mapped = torch.empty(logits.shape, dtype=torch.float64)
    for fit_on, judged in (halves, halves[::-1]):
        mapped[judged] = fit_map(name, logits[fit_on], labels[fit_on])(logits[judged])
    return measure_calibration(mapped, labels).ece
