"""Calibration per tag of a multi-label classifier (a sigmoid per tag), and its temperatures.

- :func:`marginal_ece`: the marginal calibration error of Kumar et al. (2019, "Verified
  uncertainty calibration", Section 3): each tag's probability is a binary prediction of whether
  the example carries it, binned over every example as the classwise ECE of
  :mod:`labelemb.metrics.calibration` bins a class's (the same :data:`BINS` equal-width bins, bin
  b holding the probabilities in (b / B, (b + 1) / B]), and the tags' errors are averaged:

      ECE_k = sum_b |B_kb| / N |freq_kb - conf_kb|,    marginal ECE = (1 / K) sum_k ECE_k

  over all K tags, carried in the split or not, as the classwise ECE averages over every class: a
  tag no example carries has a defined error (its mean probability: what the model wrongly
  expects of it), and leaving it out would let the figure change with which tags a split holds.
- :func:`fit_tag_temperature`: one temperature T for every tag, minimising the mean binary
  cross-entropy of sigmoid(z / T) over every (example, tag) pair of dev;
  :func:`fit_tag_temperatures`: a temperature per tag, each tag's own 1-D problem over its column.

Each fit is scipy's bounded minimisation over log T within
:data:`~labelemb.metrics.temperature.TEMPERATURE_RANGE`. The cross-entropy
softplus(s z) - y s z is convex in s = 1 / T, so unimodal in log T: the bounded search finds its
one minimum. Where dev never carries a tag, or always does, the cross-entropy falls all the way
to a bound (T -> 0 sends every probability to the one answer dev holds): no finite optimum, so
that tag keeps T = 1, its raw probabilities. A tag whose dev logits the sign alone separates
(every carrier's positive, every other's negative) has none either, and its fit takes the floor
of the range, as :func:`~labelemb.metrics.temperature.fit_temperature` does for a dev split
predicted all right.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .calibration import BINS
from .temperature import TEMPERATURE_RANGE

#: The interval of log T the fits search.
LOG_RANGE = (math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1]))
#: The fits stop when log T is known within this: T to a relative 1e-6.
LOG_TOLERANCE = 1e-6


def tag_calibration_errors(probabilities: Any, tags: Any, bins: int = BINS) -> np.ndarray:
    """Each tag's binary calibration error ``(K,)``, as a fraction: sum_b |B_kb| / N |freq_kb -
    conf_kb| over ``bins`` equal-width bins of its probability (module docstring)."""
    probabilities, tags = _matrices(probabilities, tags, "probabilities")
    # NaN (a diverged model's) fails the comparisons too.
    if not bool(((probabilities >= 0.0) & (probabilities <= 1.0)).all()):
        raise ValueError("tag probabilities must lie in [0, 1] (a sigmoid's); some are outside it or NaN")
    count, width = probabilities.shape
    # Tag k's bin b as one flat index k * B + b, so that each sum over every tag is one bincount
    # (233 tags: no loop over them); the bins are calibration.py's, an edge in the bin below it.
    index = np.clip(np.ceil(probabilities * bins), 1, bins) - 1 + np.arange(width) * bins
    flat = index.astype(np.int64).ravel()
    size = width * bins
    hits = np.bincount(flat, weights=tags.ravel(), minlength=size)
    confidence = np.bincount(flat, weights=probabilities.ravel(), minlength=size)
    # |B_kb| / N |freq_kb - conf_kb| = |hits_kb - confidence sum_kb| / N
    return np.abs(hits - confidence).reshape(width, bins).sum(axis=1) / count


def marginal_ece(probabilities: Any, tags: Any, bins: int = BINS) -> float:
    """The marginal ECE of tag ``probabilities`` ``(N, K)`` against the bool tag sets ``tags``, as a
    fraction: (1 / K) sum_k ECE_k over all K tags (Kumar et al. 2019; module docstring)."""
    return float(tag_calibration_errors(probabilities, tags, bins).mean())


def fit_tag_temperature(logits: Any, tags: Any) -> float:
    """The one temperature T minimising the mean over every (example, tag) pair of the binary
    cross-entropy of sigmoid(z / T): softplus(z / T) - y z / T; 1 where ``tags`` are all carried or
    none is (no finite optimum)."""
    logits, tags = _fit_inputs(logits, tags)
    if tags.all() or not tags.any():
        return 1.0
    return _fitted(logits.ravel(), tags.ravel())


def fit_tag_temperatures(logits: Any, tags: Any) -> np.ndarray:
    """Each tag's temperature ``(K,)``: the T_k minimising the mean over the examples of the binary
    cross-entropy of sigmoid(z_k / T_k) for that tag alone; 1 for a tag that ``tags`` never carry or
    always do (no finite optimum)."""
    logits, tags = _fit_inputs(logits, tags)
    carriers = tags.sum(axis=0)
    temperatures = np.ones(logits.shape[1])
    # One bounded scalar search per tag, on its column (contiguous: each is read ~30 times).
    columns, carried = np.ascontiguousarray(logits.T), np.ascontiguousarray(tags.T)
    for k in np.flatnonzero((carriers > 0) & (carriers < len(tags))):
        temperatures[k] = _fitted(columns[k], carried[k])
    return temperatures


class TagTemperatures(NamedTuple):
    """The temperatures fit on dev: ``one`` for every tag, and ``per_tag`` ``(K,)``."""

    one: float
    per_tag: np.ndarray


def tag_temperatures(logits: Any, tags: Any) -> TagTemperatures:
    """Both fits of ``logits`` and ``tags``: :func:`fit_tag_temperature`, :func:`fit_tag_temperatures`."""
    return TagTemperatures(fit_tag_temperature(logits, tags), fit_tag_temperatures(logits, tags))


def _fitted(logits: np.ndarray, tags: np.ndarray) -> float:
    """The T within the range minimising the mean cross-entropy of sigmoid(logits / T) for ``tags``."""
    # lazy: scipy.optimize takes a noticeable part of a second to import; only a fit needs it
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        _mean_cross_entropy,
        bounds=LOG_RANGE,
        args=(logits, tags),
        method="bounded",
        options={"xatol": LOG_TOLERANCE},
    )
    return float(math.exp(found.x))


def _mean_cross_entropy(log_temperature: float, logits: np.ndarray, tags: np.ndarray) -> float:
    """(1 / n) sum softplus(u) - y u with u = logits / T: the cross-entropy of sigmoid(u), stable
    for any u (logaddexp(0, u) never overflows)."""
    scaled = logits * math.exp(-log_temperature)
    return float(np.mean(np.logaddexp(0.0, scaled) - tags * scaled))


def _fit_inputs(logits: Any, tags: Any) -> tuple[np.ndarray, np.ndarray]:
    logits, tags = _matrices(logits, tags, "logits")
    if not bool(np.isfinite(logits).all()):
        raise ValueError("tag temperatures cannot be fit on non-finite logits (a diverged model's)")
    return logits, tags


def _matrices(values: Any, tags: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as float64 and ``tags`` as 0/1 float64 matrices ``(N, K)`` of one shape, N >= 1."""
    values = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    tags = np.asarray(tags.detach().cpu() if hasattr(tags, "detach") else tags).astype(bool)
    if values.ndim != 2 or values.shape != tags.shape:
        raise ValueError(
            f"calibration per tag needs {what} and tag sets of one shape (N, K), "
            f"got {values.shape} and {tags.shape}"
        )
    if len(values) == 0:
        raise ValueError(
            f"calibration per tag needs at least one example, got {what} of shape {values.shape}"
        )
    return values, tags.astype(np.float64)
