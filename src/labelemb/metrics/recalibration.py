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

Both scaling maps minimise the mean NLL on dev (by Newton's method: :func:`fit_scaling`) plus a
penalty (:func:`affine_penalty`) that keeps the minimum unique and finite where plain NLL has none
(a dev split predicted all right, a class absent from it). A one-vs-rest row that maps to all zeros
becomes uniform, and every one-vs-rest probability is floored at :data:`PROBABILITY_FLOOR` (an
exact 0 would make the NLL infinite).
:func:`recalibration_figures` fits each map on dev and judges the test probabilities as
:func:`~labelemb.metrics.measure_calibration` judges logits; :func:`cross_fitted_ece` judges a map
on the dev split alone, fit on one half and measured on the other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy
import torch
from torch import Tensor

from .calibration import BINS, measure_calibration
from .figures import in_units

#: The maps, by the name their figures carry (``recal_dirichlet_ece``).
MAPS = ("vector", "dirichlet", "binning", "isotonic")
#: The figures recorded per map: :data:`~labelemb.metrics.FIGURES` but the MCE, and the error (%).
MAP_FIGURES = ("ece", "adaece", "classwise_ece", "nll", "brier", "error")
#: The least probability a one-vs-rest map gives a class (our choice; scaling maps need none).
PROBABILITY_FLOOR = 1e-6
#: ODIR's weights (Kull et al. 2019, Eq. 7): off-diagonal entries of W and the intercepts. Fixed
#: here (the paper picks them by cross-validation on a grid: left to the caller, ``odir=``).
ODIR = (1e-2, 1e-2)
#: The pull of every other parameter towards the identity map: small, so the fit is Guo et al.'s
#: plain NLL where that has a minimum, and finite where it has none.
IDENTITY_PULL = 1e-4

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


def affine_penalty(weights: Tensor, bias: Tensor, odir: tuple[float, float] = ODIR) -> Tensor:
    """The penalty added to a scaling map's mean NLL: for a matrix W (m x m), ODIR's
    lambda / (m (m - 1)) sum_(i != j) W_ij^2 + mu / m sum_j b_j^2 (Kull et al. 2019, Eq. 7) and
    :data:`IDENTITY_PULL` / m sum_i (W_ii - 1)^2; for a vector w (vector scaling)
    :data:`IDENTITY_PULL` / m (sum_i (w_i - 1)^2 + sum_j b_j^2)."""
    classes = bias.numel()
    if weights.ndim == 1:
        return IDENTITY_PULL / classes * ((weights - 1).square().sum() + bias.square().sum())
    off_diagonal, intercept = odir
    diagonal = weights.diagonal()
    off = weights.square().sum() - diagonal.square().sum()
    penalty = off_diagonal * off / max(classes * (classes - 1), 1) + intercept * bias.square().sum() / classes
    return penalty + IDENTITY_PULL / classes * (diagonal - 1).square().sum()


def _scaled(inputs: Tensor, weights: Tensor, bias: Tensor) -> Tensor:
    return (inputs * weights if weights.ndim == 1 else inputs @ weights.T) + bias


def _class_features(inputs: Tensor, matrix: bool) -> Tensor:
    """U (N, m, f) with z_ik = sum_a theta_ka U_ika: for a matrix every class reads [x_i, 1]
    (theta_k = [W_k, b_k]); for a vector class k reads [x_ik, 1] (theta_k = [w_k, b_k])."""
    count, classes = inputs.shape
    ones = torch.ones(count, classes, 1, dtype=inputs.dtype)
    if matrix:
        return torch.cat([inputs[:, None, :].expand(count, classes, classes), ones], dim=-1)
    return torch.cat([inputs[:, :, None], ones], dim=-1)


def _penalty_of(theta: Tensor, matrix: bool, odir: tuple[float, float]) -> Tensor:
    """:func:`affine_penalty` of theta (m, f): the weights its first columns, the bias its last."""
    weights = theta[:, :-1] if matrix else theta[:, 0]
    return affine_penalty(weights, theta[:, -1], odir)


def fit_scaling(
    inputs: Tensor, labels: Tensor, matrix: bool, odir: tuple[float, float] = ODIR
) -> tuple[Tensor, Tensor]:
    """The weights (a vector, or with ``matrix`` a matrix) and intercepts minimising
    mean NLL(softmax(W x + b), y) + :func:`affine_penalty` over the rows x of ``inputs``: a convex
    problem (a multinomial logistic regression), solved from the identity map by Newton's method
    with the Hessian in closed form and a backtracking line search, in float64. Where p_i is the
    softmax of row i and U_ik its class-k features (:func:`_class_features`):

        g = (1 / N) sum_i sum_k (p_ik - [y_i = k]) U_ik
        H = (1 / N) sum_i [blockdiag_k(p_ik U_ik U_ik^T) - q_i q_i^T],   q_i = (p_ik U_ik)_k

    plus the penalty's gradient and (diagonal) Hessian. A dozen steps, each a few passes."""
    count, classes = inputs.shape
    features = _class_features(inputs, matrix)
    width = features.shape[-1]
    onehot = torch.nn.functional.one_hot(labels, classes).double()
    theta = torch.zeros(classes, width, dtype=torch.float64)
    theta[:, :-1] = torch.eye(classes, dtype=torch.float64) if matrix else 1.0

    def objective(candidate: Tensor) -> tuple[Tensor, Tensor]:
        logq = torch.einsum("ika,ka->ik", features, candidate).log_softmax(-1)
        return -(logq * onehot).sum() / count + _penalty_of(candidate, matrix, odir), logq

    with one_thread():
        value, logq = objective(theta)
        for _ in range(100):
            gradient, hessian = _newton_terms(theta, features, logq.exp(), onehot, matrix, odir)
            if float(gradient.abs().max()) < 1e-11:
                break
            step = torch.linalg.solve(hessian, -gradient.reshape(-1)).reshape(theta.shape)
            rate, slope = 1.0, float((gradient * step).sum())
            while rate > 1e-10:
                candidate = theta + rate * step
                new_value, new_logq = objective(candidate)
                if float(new_value) <= float(value) + 1e-4 * rate * slope:
                    break
                rate /= 2.0
            else:
                break  # no descent left in rounding: at the minimum
            theta, value, logq = candidate, new_value, new_logq
    weights = theta[:, :-1] if matrix else theta[:, 0]
    return weights.contiguous(), theta[:, -1].contiguous()


def _newton_terms(
    theta: Tensor,
    features: Tensor,
    probabilities: Tensor,
    onehot: Tensor,
    matrix: bool,
    odir: tuple[float, float],
) -> tuple[Tensor, Tensor]:
    """The objective's gradient (m, f) and Hessian (m f, m f) at ``theta`` (see :func:`fit_scaling`)."""
    count, classes, width = features.shape
    gradient = torch.einsum("ik,ika->ka", probabilities - onehot, features) / count
    weighted = probabilities[:, :, None] * features  # q_i
    blocks = torch.einsum("ika,ikc->kac", weighted, features) / count
    flat = weighted.reshape(count, classes * width)
    hessian = torch.block_diag(*blocks) - flat.T @ flat / count
    with torch.enable_grad():
        leaf = theta.clone().requires_grad_(True)
        (penalty_gradient,) = torch.autograd.grad(_penalty_of(leaf, matrix, odir), leaf, create_graph=True)
        # The penalty is a sum of squares of single entries: its Hessian is diagonal.
        (curvature,) = torch.autograd.grad(penalty_gradient.sum(), leaf)
    hessian = hessian + torch.diag(curvature.reshape(-1))
    return gradient + penalty_gradient.detach(), hessian


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for a while: the fit's products are of m columns, and threads that wait
    on each other at every small step cost it several times over on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
