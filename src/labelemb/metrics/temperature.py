"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks", Section 4.2):
one scalar T for the whole model, fit on held-out logits by minimising the NLL of
``softmax(logits / T)``; the calibration figures are then those of the logits divided by T.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from .calibration import Calibration, CalibrationSums
from .softmax import softmax_parts

#: The range a fitted temperature is kept within (a dev split predicted entirely right would
#: otherwise drive T towards 0, and one of constant logits towards infinity).
TEMPERATURE_RANGE = (0.01, 100.0)
#: How near a bound of :data:`TEMPERATURE_RANGE` (relatively) a fitted temperature counts as at it:
#: a fit the bound stopped lands on it exactly, and one a hair inside found no better minimum.
BOUND_TOLERANCE = 1e-3


class LikelihoodCurve:
    """The mean NLL of ``softmax(s * logits)`` for ``labels`` as a function of the inverse
    temperature s = 1 / T, with its first two derivatives:

        g(s)   = (1 / N) sum_i [log sum_k exp(s z_ik) - s z_iy]
        g'(s)  = (1 / N) sum_i [E_p(z_i) - z_iy]
        g''(s) = (1 / N) sum_i Var_p(z_i)  >= 0

    with z the logits minus each row's maximum and p = softmax(s z_i): g is convex in s, so it has
    one minimum on an interval, where g' changes sign.
    """

    def __init__(self, logits: Tensor, labels: Tensor) -> None:
        parts = softmax_parts(logits.detach().cpu().double())
        labels = labels.detach().cpu().long()
        # Classes along the rows: each sum over classes adds m rows of N, which vectorises over
        # the examples (a sum along a last dimension of 10 does not).
        self.shifted = parts.shifted.T.contiguous()
        self.gold = parts.shifted.gather(-1, labels[:, None]).squeeze(-1)
        self.mean_gold = float(self.gold.mean())
        self.right = (parts.predictions == labels).double()

    def slopes(self, s: float) -> tuple[Tensor, float, float]:
        """The totals sum_k exp(s z_ik) at ``s`` (each example's top probability is the inverse of
        its total; the rows' maxima are 0 at any temperature, so exp never overflows), and g'(s)
        and g''(s)."""
        exponentials = torch.mul(self.shifted, s).exp_()
        totals = exponentials.sum(0)
        weighted = exponentials.mul_(self.shifted)
        mean = weighted.sum(0).div_(totals)
        second = weighted.mul_(self.shifted).sum(0).div_(totals)
        first = float(mean.mean()) - self.mean_gold
        return totals, first, float(second.sub_(mean.mul_(mean)).mean())

    def nlls(self, s: float, totals: Tensor) -> Tensor:
        """Each example's NLL at ``s``, given its totals there."""
        return totals.log() - s * self.gold


def minimise_over_inverse_temperature(curve: LikelihoodCurve) -> tuple[float, Tensor, Tensor]:
    """The inverse temperature s minimising the curve's NLL within :data:`TEMPERATURE_RANGE`, with
    the totals at s = 1 and at the s found.

    Newton's method on g'(s) = 0 from s = 1, kept within the interval where g' changes sign: a
    step that would leave it, or that shrinks too slowly, bisects it (geometrically: T spans four
    decades) or, the first time, tries the range's bound. Where g' keeps its sign up to a bound
    (a dev split predicted all right has no minimum: its NLL falls as T falls), the bound is taken.
    It stops when a step changes s by less than 1e-10 of itself: a few steps of a few passes over
    the logits each.
    """
    low_end, high_end = 1.0 / TEMPERATURE_RANGE[1], 1.0 / TEMPERATURE_RANGE[0]
    low, high = low_end, high_end
    tried_end = False
    s, previous_step = 1.0, math.inf
    totals_at_one: Tensor | None = None
    for _ in range(200):
        totals, first, second = curve.slopes(s)
        if totals_at_one is None:
            totals_at_one = totals
        if first == 0.0 or (first > 0.0 and s == low_end) or (first < 0.0 and s == high_end):
            break
        if first > 0.0:
            high = s
        else:
            low = s
        step = first / second if second > 0.0 else math.inf
        proposal = s - step
        if not low < proposal < high or abs(step) > 0.5 * previous_step:
            end = high_end if first < 0.0 else low_end
            proposal = end if not tried_end and end in (low, high) else math.sqrt(low * high)
            tried_end = tried_end or proposal == end
        if abs(proposal - s) <= 1e-10 * s:
            break
        previous_step, s = abs(proposal - s), proposal
    assert totals_at_one is not None
    return s, totals_at_one, totals


def fitted_curve(logits: Tensor, labels: Tensor) -> tuple[LikelihoodCurve, float, Tensor, Tensor] | None:
    """The likelihood curve of ``logits`` and what :func:`minimise_over_inverse_temperature` finds
    on it; None where a logit is not finite (a diverged model: nothing to fit)."""
    if len(labels) == 0:
        raise ValueError("a temperature needs at least one example")
    if not bool(torch.isfinite(logits).all()):
        return None
    curve = LikelihoodCurve(logits, labels)
    return curve, *minimise_over_inverse_temperature(curve)


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T minimising the mean NLL of ``softmax(logits / T)`` for ``labels``: one
    scalar for the whole model (Guo et al. 2017, Section 4.2), fit on held-out logits.

    The NLL is convex in 1 / T (:class:`LikelihoodCurve`); it is minimised over
    :data:`TEMPERATURE_RANGE` by a safeguarded Newton's method
    (:func:`minimise_over_inverse_temperature`): no step size to tune, the same T for the same
    logits.
    """
    fitted = fitted_curve(logits, labels)
    if fitted is None:
        raise ValueError("a temperature cannot be fit on non-finite logits (a diverged model's)")
    return 1.0 / fitted[1]


def temperature_bound(temperature: float | None) -> Literal["floor", "ceiling"] | None:
    """``floor`` where a fitted ``temperature`` is the lowest of :data:`TEMPERATURE_RANGE` (within
    :data:`BOUND_TOLERANCE`), ``ceiling`` where it is the highest, else None (also for no
    temperature). At the floor the dev split had (almost) no mistakes to fit on, and the scaled
    probabilities are near 0 or 1 on any input; at the ceiling they are near uniform."""
    if temperature is None:
        return None
    low, high = TEMPERATURE_RANGE
    if temperature <= low * (1.0 + BOUND_TOLERANCE):
        return "floor"
    if temperature >= high * (1.0 - BOUND_TOLERANCE):
        return "ceiling"
    return None


class TemperatureFit(NamedTuple):
    """A temperature fit on some logits, and those logits' top-probability figures (ECE, MCE, NLL
    and the bins; the rest nan) at T = 1 (``raw``) and at the T fit (``scaled``)."""

    temperature: float
    raw: Calibration
    scaled: Calibration


def fit_and_measure(logits: Tensor, labels: Tensor) -> TemperatureFit | None:
    """:func:`fit_temperature` on ``logits`` and their top-probability calibration before and after
    it, from the totals the fit computed at T = 1 and at the T fit (no pass of its own); None where
    a logit is not finite (a diverged model: nothing to fit, nothing to scale)."""
    fitted = fitted_curve(logits, labels)
    if fitted is None:
        return None
    curve, s, totals_at_one, totals = fitted
    raw, scaled = CalibrationSums(top_only=True), CalibrationSums(top_only=True)
    raw.add_top(1.0 / totals_at_one, curve.right, curve.nlls(1.0, totals_at_one))
    scaled.add_top(1.0 / totals, curve.right, curve.nlls(s, totals))
    return TemperatureFit(1.0 / s, raw.result(), scaled.result())
