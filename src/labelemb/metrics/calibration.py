"""Calibration of a classifier's predictions: how far its confidence is from its accuracy.

From logits and labels: the expected calibration error over equal-width bins (ECE, Guo et al.
2017) and its maximum over bins (MCE), the adaptive ECE over equal-mass bins (AdaECE, Nguyen &
O'Connor 2015; Mukhoti et al. 2020), the classwise ECE (Kull et al. 2019), the negative
log-likelihood (NLL) and the Brier score, and the bins of a reliability diagram
(:func:`measure_calibration`, or :class:`CalibrationSums` batch by batch). Temperature scaling is
in :mod:`labelemb.metrics.temperature`; what a run records of these, in
:mod:`labelemb.tasks.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy
import torch
from torch import Tensor

from .figures import in_units
from .softmax import softmax_parts

#: Equal-width confidence bins, as in Guo et al. (2017) "On calibration of modern neural networks";
#: the equal-mass bins of AdaECE and the per-class bins of the classwise ECE are as many.
BINS = 15

#: The figures of one set of predictions: the fields of :class:`Calibration` that are numbers.
FIGURES = ("ece", "adaece", "classwise_ece", "mce", "nll", "brier")


@dataclass(frozen=True)
class Calibration:
    """Calibration of one set of predictions.

    ``ece``, ``adaece``, ``classwise_ece`` and ``mce`` are in percent (0-100, like the error),
    ``nll`` in nats per example, ``brier`` the mean over examples of sum_k (p_k - [y = k])^2
    (0-2). Bin ``b`` of ``bins`` holds the confidences in ``(b / bins, (b + 1) / bins]``;
    ``counts[b]`` examples fell in it, ``accuracy[b]`` and ``confidence[b]`` are their accuracy and
    mean confidence (fractions; None for an empty bin).
    """

    ece: float
    nll: float
    counts: list[int]
    accuracy: list[float | None]
    confidence: list[float | None]
    adaece: float = math.nan
    classwise_ece: float = math.nan
    mce: float = math.nan
    brier: float = math.nan
    #: Predictions with a non-finite logit; where there are any, every figure is nan.
    non_finite: int = 0

    @property
    def bins(self) -> int:
        return len(self.counts)

    def figures(self) -> dict[str, float]:
        """The figures of :data:`FIGURES` that were computed, by name (one not computed is nan,
        and left out: the top-probability sums alone compute the ECE, MCE and NLL)."""
        return {figure: getattr(self, figure) for figure in FIGURES if not math.isnan(getattr(self, figure))}

    def reliability(self) -> dict[str, Any]:
        """The bins of a reliability diagram as plain data: ``{"bins": B, "counts": [...],
        "accuracy": [...], "confidence": [...]}`` (what :func:`pooled_bins` pools)."""
        bins = {"bins": self.bins, "counts": self.counts, "accuracy": self.accuracy}
        return {**bins, "confidence": self.confidence}


def undefined_calibration(bins: int, non_finite: int) -> Calibration:
    """The calibration of predictions ``non_finite`` of which have a non-finite logit: no figure is
    defined (each nan, left out of :meth:`Calibration.figures`; ``non_finite`` says how many) and
    the bins are empty."""
    return Calibration(
        ece=math.nan,
        nll=math.nan,
        counts=[0] * bins,
        accuracy=[None] * bins,
        confidence=[None] * bins,
        non_finite=non_finite,
    )


#: Batches are summed in blocks of at least this many logits (256 KB in float64): a few batches of
#: 1,000 x 10 logits, so the per-operation overhead is shared, and small enough to stay in the
#: cache while the evaluation pass goes on (in a check of the MNIST MLP, blocks of 2^20 logits,
#: summed once the pass was over, cost more than they saved: bench/calibration.py).
BLOCK_LOGITS = 1 << 15


class CalibrationSums:
    """The figures' sums, added block by block (:data:`BLOCK_LOGITS`) so that a split's logits are
    never held at once: per equal-width bin the counts, correct predictions and summed
    confidences; per class and bin the same of that class's probability; the summed NLL and Brier
    score; and each example's confidence and correctness (two numbers an example, for the
    equal-mass bins of AdaECE)."""

    def __init__(self, bins: int = BINS, *, top_only: bool = False) -> None:
        if bins < 1:
            raise ValueError(f"calibration needs at least one bin, got {bins}")
        self.bins = bins
        #: Only the top probability's bins and the NLL (ECE, MCE, NLL; the rest nan): the dev
        #: figures a check records, at a fraction of the cost of every figure.
        self.top_only = top_only
        # On the CPU in float64: sums over a whole split, on any device (MPS has no float64).
        self.counts = torch.zeros(bins, dtype=torch.int64)
        self.correct = torch.zeros(bins, dtype=torch.float64)
        self.confidence = torch.zeros(bins, dtype=torch.float64)
        self.nll = torch.zeros((), dtype=torch.float64)
        self.brier = torch.zeros((), dtype=torch.float64)
        self.examples = 0
        #: Rows with a non-finite logit (a diverged model's): they leave every figure undefined.
        self.non_finite = 0
        # (m, bins) once the first batch says m.
        self.class_counts: Tensor | None = None
        self.class_hits: Tensor | None = None
        self.class_probability: Tensor | None = None
        self.confidences: list[Tensor] = []
        self.corrects: list[Tensor] = []
        # Batches added and not yet summed, and how many logits they hold.
        self.pending: list[tuple[Tensor, Tensor]] = []
        self.pending_logits = 0

    def add(self, logits: Tensor, labels: Tensor) -> None:
        """Count the predictions ``logits`` ``(N, m)`` of the examples labelled ``labels`` ``(N,)``."""
        logits = logits.detach().cpu().double()
        classes = self.pending[0][0].shape[-1] if self.pending else logits.shape[-1]
        if logits.shape[-1] != classes:
            raise ValueError(f"logits of {logits.shape[-1]} classes after logits of {classes}")
        self.pending.append((logits, labels.detach().cpu().long()))
        self.pending_logits += logits.numel()
        if self.pending_logits >= BLOCK_LOGITS:
            self._sum_pending()

    def _sum_pending(self) -> None:
        if not self.pending:
            return
        logits = torch.cat([logits for logits, _ in self.pending])
        labels = torch.cat([labels for _, labels in self.pending])
        self.pending, self.pending_logits = [], 0
        self._add_block(logits, labels)

    # A block is summed in inference mode wherever it is added from: the sums it creates (the
    # classwise ones, on the first block) are then updated in the same mode by every later block,
    # whether that one is summed inside an evaluation pass or when its figures are asked for.
    @torch.inference_mode()
    def _add_block(self, logits: Tensor, labels: Tensor) -> None:
        finite = torch.isfinite(logits).all(-1)
        if not bool(finite.all()):
            self.non_finite += int((~finite).sum())
            logits, labels = logits[finite], labels[finite]
        # The prediction is the logits' argmax, as the error counts it. The confidence is the top
        # softmax probability: exactly 0.5 for a tie of two, 1.0 for a far lead, so an edge is an
        # edge; the likelihood is taken in log space (finite however small the probability).
        parts = softmax_parts(logits)
        confidence = 1.0 / parts.total  # the top class's exp(0) / total
        right = (parts.predictions == labels).double()
        gold = parts.shifted.gather(-1, labels[:, None]).squeeze(-1)
        self.add_top(confidence, right, parts.total.log() - gold)
        if self.top_only:
            return
        probabilities = parts.exponentials.div_(parts.total[:, None])
        gold_probability = probabilities.gather(-1, labels[:, None]).squeeze(-1)
        # sum_k (p_k - [y = k])^2 = sum_k p_k^2 - 2 p_y + 1
        flat = probabilities.view(-1)
        self.brier += torch.dot(flat, flat) - 2.0 * gold_probability.sum() + len(labels)
        self._add_classwise(probabilities, labels)
        self.confidences.append(confidence)
        self.corrects.append(right)

    def add_top(self, confidence: Tensor, right: Tensor, nll: Tensor) -> None:
        """Count examples by their top probability ``confidence``, whether the prediction was
        ``right`` (1.0 or 0.0) and their ``nll`` (all ``(N,)``, float64): what the ECE, MCE and NLL
        are summed from."""
        index = self.bin_of(confidence)
        self.counts += torch.bincount(index, minlength=self.bins)
        self.correct.index_add_(0, index, right)
        self.confidence.index_add_(0, index, confidence)
        self.nll += nll.sum()
        self.examples += len(confidence)

    def bin_of(self, probability: Tensor) -> Tensor:
        """Bin b is (b / B, (b + 1) / B]: a probability on an edge belongs to the bin below it, 1.0
        to the last and 0 (an underflowed class probability) to the first."""
        return probability.mul(self.bins).ceil_().clamp_(1, self.bins).sub_(1).long()

    def _add_classwise(self, probabilities: Tensor, labels: Tensor) -> None:
        classes = probabilities.shape[-1]
        size = classes * self.bins
        if self.class_counts is None:
            shape = (classes, self.bins)
            self.class_counts = torch.zeros(shape, dtype=torch.float64)
            self.class_hits = torch.zeros(shape, dtype=torch.float64)
            self.class_probability = torch.zeros(shape, dtype=torch.float64)
        elif self.class_counts.shape[0] != classes:
            raise ValueError(f"logits of {classes} classes after logits of {self.class_counts.shape[0]}")
        # Class k's bin b as one flat index k * B + b (bin_of's steps, the offset added before the
        # one conversion to integers), so each sum is one bincount; a class is hit only by the
        # examples labelled with it, so the hits count one entry per example.
        offsets = torch.arange(classes, dtype=probabilities.dtype) * self.bins - 1
        scaled = probabilities.mul(self.bins).ceil_().clamp_(1, self.bins).add_(offsets)
        flat = scaled.long()
        hits = flat.gather(-1, labels[:, None]).reshape(-1)
        flat = flat.view(-1)
        self.class_counts.view(-1).add_(torch.bincount(flat, minlength=size))
        self.class_hits.view(-1).add_(torch.bincount(hits, minlength=size))
        self.class_probability.view(-1).add_(
            torch.bincount(flat, weights=probabilities.reshape(-1), minlength=size)
        )

    def binned(self) -> Calibration:
        """The ECE, MCE and bins of everything added so far (what bins alone can say)."""
        self._sum_pending()
        if self.non_finite:
            return undefined_calibration(self.bins, self.non_finite)
        if self.examples == 0:
            raise ValueError("calibration of no examples")
        counts = self.counts.double()
        # sum_b |B_b| / N * |acc_b - conf_b| = sum_b |correct_b - confidence sum_b| / N
        gaps = (self.correct - self.confidence).abs()
        filled = self.counts > 0
        accuracy = torch.where(filled, self.correct / counts.clamp(min=1), torch.nan)
        confidence = torch.where(filled, self.confidence / counts.clamp(min=1), torch.nan)
        shares = {
            "ece": float(gaps.sum() / self.examples),
            "mce": float((gaps / counts.clamp(min=1))[filled].max()),
        }
        return Calibration(
            **in_units(shares),
            nll=math.nan,
            counts=self.counts.tolist(),
            accuracy=[None if v != v else v for v in accuracy.tolist()],
            confidence=[None if v != v else v for v in confidence.tolist()],
        )

    def result(self) -> Calibration:
        """Every figure, and the bins, of everything added so far (with ``top_only``: the ECE, MCE,
        NLL and bins)."""
        self._sum_pending()
        if self.non_finite:
            return undefined_calibration(self.bins, self.non_finite)
        if self.top_only:
            return replace(self.binned(), nll=float(self.nll / self.examples))
        return replace(
            self.binned(),
            nll=float(self.nll / self.examples),
            brier=float(self.brier / self.examples),
            **in_units(
                {
                    "adaece": adaptive_ece(torch.cat(self.confidences), torch.cat(self.corrects), self.bins),
                    "classwise_ece": self._classwise_ece(),
                }
            ),
        )

    def _classwise_ece(self) -> float:
        """(1 / m) sum_k sum_b |B_kb| / N |freq_kb - conf_kb|: each class's probability binned over
        every example, as the ECE bins the top one."""
        if self.class_counts is None or self.class_hits is None or self.class_probability is None:
            return math.nan
        gaps = (self.class_hits - self.class_probability).abs().sum(dim=1) / self.examples
        return float(gaps.mean())


def adaptive_ece(confidence: Tensor, correct: Tensor, bins: int = BINS) -> float:
    """ECE over ``bins`` bins of (as near as possible) equal mass, as a fraction.

    The examples are sorted by confidence and cut into ``bins`` runs whose sizes differ by at most
    one (rank r of N goes to bin floor(r * bins / N)); equal confidences are kept together, in the
    bin of the first of them, so the result does not depend on the order of ties. A split of fewer
    examples than bins has bins of one example and empty ones, which contribute nothing.
    """
    count = len(confidence)
    if count == 0:
        return math.nan
    confidence = confidence.detach().cpu().double()
    # numpy's sort is about five times faster than torch's on the CPU; the order among equal
    # confidences does not matter, since ties are put together below.
    order = torch.from_numpy(numpy.argsort(confidence.numpy(), kind="quicksort"))
    ordered = confidence[order]
    _, tie_group, group_sizes = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    first_of_ties = (torch.cumsum(group_sizes, 0) - group_sizes)[tie_group]
    index = torch.div(first_of_ties * bins, count, rounding_mode="floor")
    gaps = torch.zeros(bins, dtype=torch.float64)
    gaps.index_add_(0, index, correct.detach().cpu().double()[order] - ordered)
    return float(gaps.abs().sum() / count)


def pooled_bins(bins: Sequence[Mapping[str, Any]]) -> Calibration:
    """Several evaluations' bins (each a :meth:`Calibration.reliability`, as a run records it in
    ``test_calibration``, e.g. every seed's selected check) pooled as one set of predictions:
    counts added, accuracy and confidence weighted by count. Its ECE and MCE are those of the
    pooled predictions; the figures the bins do not hold (NLL, AdaECE, classwise ECE, Brier) are
    nan."""
    if not bins:
        raise ValueError("no bins to pool")
    sums = CalibrationSums(int(bins[0]["bins"]))
    for record in bins:
        if int(record["bins"]) != sums.bins:
            raise ValueError(f"cannot pool {record['bins']} bins with {sums.bins}")
        counts = torch.tensor(record["counts"], dtype=torch.int64)
        sums.counts += counts
        for total, means in ((sums.correct, record["accuracy"]), (sums.confidence, record["confidence"])):
            total += torch.tensor([0.0 if v is None else v for v in means], dtype=torch.float64) * counts
        sums.examples += int(counts.sum())
    return sums.binned()


def measure_calibration(logits: Tensor, labels: Tensor, bins: int = BINS) -> Calibration:
    """Every calibration figure of ``logits`` ``(N, m)`` for ``labels`` ``(N,)``, with the per-bin
    figures of a reliability diagram.

    With p = softmax(logits), confidence c_i = max_k p_ik, prediction argmax_k of the logits (the
    first of equals, as the error counts it), and bins b = 0 .. bins - 1 of equal width,
    B_b = {i : c_i in (b / bins, (b + 1) / bins]} (right-closed: a confidence on an edge falls in
    the bin below it, 1.0 in the last; 15 bins by default, (0, 1/15], (1/15, 2/15], ...):

        ECE     = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|            (percent)
        MCE     = max_b over non-empty bins |acc(B_b) - conf(B_b)|     (percent)
        AdaECE  = the ECE over equal-mass bins (:func:`adaptive_ece`)  (percent)
        cw-ECE  = (1 / m) sum_k sum_b |B_kb| / N * |freq_k(B_kb) - mean p_k(B_kb)|, B_kb the
                  examples whose p_ik falls in bin b and freq_k the fraction labelled k (percent)
        NLL     = -(1 / N) sum_i log p_{i, y_i}                       (nats, from log_softmax)
        Brier   = (1 / N) sum_i sum_k (p_ik - [y_i = k])^2

    where acc(B_b) is the fraction of B_b predicted right and conf(B_b) its mean confidence;
    empty bins contribute nothing. Computed in float64 on the CPU.
    """
    sums = CalibrationSums(bins)
    sums.add(logits, labels)
    return sums.result()
