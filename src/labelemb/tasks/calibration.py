"""Calibration of a classifier's predictions, raw and after temperature scaling.

Every classification task records, for its test split at each check: the expected calibration
error over equal-width bins (ECE, Guo et al. 2017) and its maximum over bins (MCE), the adaptive
ECE over equal-mass bins (AdaECE, Nguyen & O'Connor 2015; Mukhoti et al. 2020), the classwise ECE
(Kull et al. 2019), the negative log-likelihood (NLL) and the Brier score, and the bins of a
reliability diagram. Where the data has a dev split, one temperature T is fit on the dev split's
logits by minimising their NLL (Guo et al. 2017, Section 4.2), and the same figures are recorded
again for the test logits divided by T (``test_ece_scaled``, ...), with ``temperature``. The test
split is never used to fit. The run's summary keeps all of them at the selected check
(``selected_test_ece``, ...): :data:`CALIBRATION_FIELDS`. They are computed here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

#: Equal-width confidence bins, as in Guo et al. (2017) "On calibration of modern neural networks";
#: the equal-mass bins of AdaECE and the per-class bins of the classwise ECE are as many.
BINS = 15

#: The figures of one set of predictions, as record keys ``<split>_<figure>`` (``test_ece``).
FIGURES = ("ece", "adaece", "classwise_ece", "mce", "nll", "brier")

#: Where a temperature is fit: the scaled figures' keys end with this (``test_ece_scaled``).
SCALED = "_scaled"

#: The record keys a classification task adds at each check, which the summary keeps at the
#: selected check as ``selected_<key>``; the scaled ones and ``temperature`` only with a dev split.
CALIBRATION_FIELDS = (
    *(f"test_{figure}" for figure in FIGURES),
    "test_calibration",
    *(f"test_{figure}{SCALED}" for figure in FIGURES),
    f"test_calibration{SCALED}",
    "temperature",
)

#: The dev split's figures a check records beside its error (what ``tune --objective`` can judge a
#: trial by): its NLL raw, and its ECE and NLL after the temperature fit on it.
DEV_FIELDS = ("dev_ece", "dev_nll", "dev_ece_scaled", "dev_nll_scaled")

#: The range a fitted temperature is kept within (a dev split predicted entirely right would
#: otherwise drive T towards 0, and one of constant logits towards infinity).
TEMPERATURE_RANGE = (0.01, 100.0)


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

    @property
    def bins(self) -> int:
        return len(self.counts)

    def record(self, split: str, suffix: str = "") -> dict[str, Any]:
        """The fields of a check's record: ``<split>_ece<suffix>``, ... and the bins."""
        # A figure not computed (nan: the top-probability sums alone) is left out, as runs
        # recorded before it existed leave it out.
        figures = {
            f"{split}_{figure}{suffix}": getattr(self, figure)
            for figure in FIGURES
            if not math.isnan(getattr(self, figure))
        }
        bins = {"bins": self.bins, "counts": self.counts, "accuracy": self.accuracy}
        return {**figures, f"{split}_calibration{suffix}": {**bins, "confidence": self.confidence}}


#: Batches are summed in blocks of at least this many logits (8 MB in float64): enough that the
#: per-operation overhead, which dominates a batch of 1,000 x 10 logits, is paid once a block, and
#: few enough that a split's logits are never all held.
BLOCK_LOGITS = 1 << 20


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

    def _add_block(self, logits: Tensor, labels: Tensor) -> None:
        # The prediction is the logits' argmax, as the error counts it. The confidence is the top
        # softmax probability: exactly 0.5 for a tie of two, 1.0 for a far lead, so an edge is an
        # edge; the likelihood is taken in log space (finite however small the probability).
        parts = softmax_parts(logits)
        confidence = 1.0 / parts.total  # the top class's exp(0) / total
        right = (parts.predictions == labels).double()
        index = self.bin_of(confidence)
        self.counts += torch.bincount(index, minlength=self.bins)
        self.correct.index_add_(0, index, right)
        self.confidence.index_add_(0, index, confidence)
        gold = parts.shifted.gather(-1, labels[:, None]).squeeze(-1)
        self.nll += (parts.total.log() - gold).sum()
        self.examples += len(labels)
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
        if self.examples == 0:
            raise ValueError("calibration of no examples")
        counts = self.counts.double()
        # sum_b |B_b| / N * |acc_b - conf_b| = sum_b |correct_b - confidence sum_b| / N
        gaps = (self.correct - self.confidence).abs()
        filled = self.counts > 0
        accuracy = torch.where(filled, self.correct / counts.clamp(min=1), torch.nan)
        confidence = torch.where(filled, self.confidence / counts.clamp(min=1), torch.nan)
        return Calibration(
            ece=100.0 * float(gaps.sum() / self.examples),
            nll=math.nan,
            counts=self.counts.tolist(),
            accuracy=[None if v != v else v for v in accuracy.tolist()],
            confidence=[None if v != v else v for v in confidence.tolist()],
            mce=100.0 * float((gaps / counts.clamp(min=1))[filled].max()),
        )

    def result(self) -> Calibration:
        """Every figure, and the bins, of everything added so far (with ``top_only``: the ECE, MCE,
        NLL and bins)."""
        self._sum_pending()
        if self.top_only:
            return replace(self.binned(), nll=float(self.nll / self.examples))
        return replace(
            self.binned(),
            nll=float(self.nll / self.examples),
            adaece=100.0 * adaptive_ece(torch.cat(self.confidences), torch.cat(self.corrects), self.bins),
            classwise_ece=100.0 * self._classwise_ece(),
            brier=float(self.brier / self.examples),
        )

    def _classwise_ece(self) -> float:
        """(1 / m) sum_k sum_b |B_kb| / N |freq_kb - conf_kb|: each class's probability binned over
        every example, as the ECE bins the top one."""
        if self.class_counts is None or self.class_hits is None or self.class_probability is None:
            return math.nan
        gaps = (self.class_hits - self.class_probability).abs().sum(dim=1) / self.examples
        return float(gaps.mean())


class SoftmaxParts(NamedTuple):
    """What softmax and log-softmax are made of, row by row: ``shifted`` (the logits minus the
    row's maximum), their ``exponentials``, the row's ``total`` of them, and the index of the row's
    maximum (the first of equals). softmax is ``exponentials / total``, log-softmax
    ``shifted - log(total)``."""

    shifted: Tensor
    exponentials: Tensor
    total: Tensor
    predictions: Tensor


def softmax_parts(logits: Tensor) -> SoftmaxParts:
    """The :class:`SoftmaxParts` of ``logits`` ``(N, m)``. Written out because torch's softmax over
    a short last dimension (a classifier's m = 10) is about twice as slow on the CPU."""
    top, predictions = logits.max(dim=-1, keepdim=True)
    shifted = logits - top
    exponentials = shifted.exp()
    return SoftmaxParts(shifted, exponentials, exponentials.sum(dim=-1), predictions.squeeze(-1))


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


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T minimising the mean NLL of ``softmax(logits / T)`` for ``labels``: one
    scalar for the whole model (Guo et al. 2017, Section 4.2), fit on held-out logits.

    The NLL is minimised over log T on :data:`TEMPERATURE_RANGE` by scipy's bounded Brent search
    (a one-dimensional problem: no gradient steps to tune, the same T for the same logits).
    """
    if len(labels) == 0:
        raise ValueError("a temperature needs at least one example")
    shifted = softmax_parts(logits.detach().cpu().double()).shifted
    gold = shifted.gather(-1, labels.detach().cpu().long()[:, None]).mean()

    def nll(log_temperature: float) -> float:
        # The rows' maxima are 0 at any temperature, so exp never overflows.
        scale = math.exp(-log_temperature)
        return float(torch.mul(shifted, scale).exp_().sum(-1).log_().mean() - scale * gold)

    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    best = float(found.x)
    # Brent's search never evaluates the bounds themselves: where it ended next to one, the bound
    # is taken if it is better.
    near = [bound for bound in (low, high) if abs(best - bound) < 1e-3]
    return math.exp(min((best, *near), key=nll))


def dev_calibration(logits: Tensor, labels: Tensor) -> tuple[float, dict[str, float]]:
    """The temperature fit on the dev split's ``logits`` and the dev figures of :data:`DEV_FIELDS`."""
    logits, labels = logits.detach().cpu().double(), labels.detach().cpu().long()  # once for all three
    temperature = fit_temperature(logits, labels)
    raw, scaled = CalibrationSums(top_only=True), CalibrationSums(top_only=True)
    raw.add(logits, labels)
    scaled.add(logits / temperature, labels)
    raw, scaled = raw.result(), scaled.result()
    figures = {
        "dev_ece": raw.ece,
        "dev_nll": raw.nll,
        "dev_ece_scaled": scaled.ece,
        "dev_nll_scaled": scaled.nll,
    }
    return temperature, figures


class ScaledCalibration:
    """A split's calibration raw and, given a temperature fit on the dev split, scaled by it: both
    added batch by batch from the same logits (:class:`CalibrationSums` each). ``top_only``: the
    raw top-probability figures alone (ECE, MCE, NLL and the bins), nothing scaled."""

    def __init__(self, temperature: float | None, bins: int = BINS, *, top_only: bool = False) -> None:
        self.temperature = None if top_only else temperature
        self.raw = CalibrationSums(bins, top_only=top_only)
        self.scaled = None if self.temperature is None else CalibrationSums(bins)

    def add(self, logits: Tensor, labels: Tensor) -> None:
        # Moved to the CPU in float64 once for both sums.
        logits, labels = logits.detach().cpu().double(), labels.detach().cpu().long()
        self.raw.add(logits, labels)
        if self.scaled is not None and self.temperature is not None:
            self.scaled.add(logits / self.temperature, labels)

    def record(self, split: str) -> dict[str, Any]:
        """The raw figures, and with a temperature the scaled ones (``<split>_ece_scaled``, ...)
        and ``temperature``."""
        record = self.raw.result().record(split)
        if self.scaled is not None:
            record.update(self.scaled.result().record(split, SCALED))
            record["temperature"] = self.temperature
        return record


def calibration_at_check(temperature: float | None, selectable: bool) -> ScaledCalibration:
    """The test split's sums at a check: every figure, raw and (with a temperature) scaled, where
    the check can still be the run's selected one, whose summary keeps them; else the raw
    top-probability figures alone (ECE, MCE, NLL and the bins: a curve over the checks), for
    about a fifth of the sums' cost."""
    if selectable:
        return ScaledCalibration(temperature)
    return ScaledCalibration(None, top_only=True)


def pooled_bins(bins: Sequence[Mapping[str, Any]]) -> Calibration:
    """Several evaluations' bins (each a ``test_calibration`` record, e.g. every seed's selected
    check) pooled as one set of predictions: counts added, accuracy and confidence weighted by
    count. Its ECE and MCE are those of the pooled predictions; the figures the bins do not hold
    (NLL, AdaECE, classwise ECE, Brier) are nan."""
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
