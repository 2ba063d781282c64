"""Class-conditional label noise: the transition matrices people flip labels with, the flipping,
and the matrix a flip realised.

A transition matrix ``T`` is row-stochastic: ``T[i, j]`` is the probability that an example of
true class ``i`` carries label ``j``. Every class-conditional kind of noise (symmetric, pair-flip,
a matrix of your own) is a matrix handed to :func:`flip_with_matrix`, which draws each example's
label from its class's row with one uniform number: the same noise seed gives the same labels
wherever numpy's generator gives the same numbers.
"""

from __future__ import annotations

import numpy as np

#: How far a row's sum may stray from 1 (a matrix written out in decimals, e.g. 0.333).
ROW_SUM_TOLERANCE = 1e-3


class NoiseError(ValueError):
    """A noise setting cannot be used: the message names the setting and the fix."""


def check_rate(rate: float, kind: str) -> None:
    """Refuse a noise rate outside [0, 1)."""
    if not 0.0 <= rate < 1.0:
        raise NoiseError(f"noise.rate {rate} is outside [0, 1): the share of labels {kind} noise flips")


def symmetric_matrix(num_classes: int, rate: float, include_self: bool = False) -> np.ndarray:
    """Symmetric (uniform) noise at ``rate``.

    ``include_self=False``: a flipped label is one of the other ``m - 1`` classes, so ``rate`` is
    the share of wrong labels (``T = (1 - r) I + r / (m - 1)`` off the diagonal; Co-teaching's and
    most papers' "symmetric"). ``include_self=True``: ``rate`` of the labels are redrawn uniformly
    from all ``m`` classes, a redraw may land on the true class, and ``r (m - 1) / m`` of the
    labels end up wrong (``T = (1 - r) I + r / m``; Lukasik et al. 2020's and the "uniform" of
    several others).
    """
    check_rate(rate, "symmetric")
    if include_self:
        return (1.0 - rate) * np.eye(num_classes) + rate / num_classes
    off = rate / (num_classes - 1)
    return (1.0 - rate - off) * np.eye(num_classes) + off


def pairflip_matrix(num_classes: int, rate: float) -> np.ndarray:
    """Pair-flip noise (Han et al. 2018, Co-teaching): class ``i`` keeps its label with
    probability ``1 - rate`` and becomes ``i + 1`` (the last class becomes the first) otherwise."""
    check_rate(rate, "pair-flip")
    matrix = (1.0 - rate) * np.eye(num_classes)
    matrix[np.arange(num_classes), (np.arange(num_classes) + 1) % num_classes] += rate
    return matrix


def check_matrix(matrix: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    """``matrix`` as float64 if it is a ``num_classes`` square, non-negative, rows summing to 1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (num_classes, num_classes):
        raise NoiseError(
            f"{source}: a transition matrix of this data set is {num_classes} x {num_classes} "
            f"(one row and one column per class), got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise NoiseError(
            f"{source}: a transition matrix holds probabilities; found a negative or non-finite entry"
        )
    sums = matrix.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if bad.size:
        row = int(bad[0])
        raise NoiseError(
            f"{source}: row {row} sums to {sums[row]:.4f}; each row of a transition matrix "
            f"(P(label j | true class {row})) must sum to 1"
        )
    return matrix / sums[:, None]


def flip_with_matrix(labels: np.ndarray, matrix: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Each label redrawn from its class's row of ``matrix``."""
    return draw_from_rows(matrix[np.asarray(labels, dtype=np.int64)], generator)


def draw_from_rows(probabilities: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """One label per row of ``probabilities`` ``(N, m)``: one uniform number each, compared with the
    row's cumulative sums, so that an example's draw does not depend on the other examples."""
    uniform = generator.random(probabilities.shape[0])
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0  # a row summing to 1 - 1e-16 never leaves a draw without a class
    return (uniform[:, None] >= cumulative).sum(axis=1).astype(np.int64)


def realised_matrix(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """The transition matrix the labels show: ``R[i, j]`` = the share of true class ``i`` labelled
    ``j`` (a class with no examples: a row of zeros)."""
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (np.asarray(clean, dtype=np.int64), np.asarray(noisy, dtype=np.int64)), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
