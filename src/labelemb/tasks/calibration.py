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
from typing import Any

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
        figures = {f"{split}_{figure}{suffix}": getattr(self, figure) for figure in FIGURES}
        bins = {"bins": self.bins, "counts": self.counts, "accuracy": self.accuracy}
        return {**figures, f"{split}_calibration{suffix}": {**bins, "confidence": self.confidence}}


class CalibrationSums:
    """The figures' sums, added batch by batch so that a split's logits are never held at once:
    per equal-width bin the counts, correct predictions and summed confidences; per class and bin
    the same of that class's probability; the summed NLL and Brier score; and each example's
    confidence and correctness (two numbers an example, for the equal-mass bins of AdaECE)."""

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

    def add(self, logits: Tensor, labels: Tensor) -> None:
        """Count the predictions ``logits`` ``(N, m)`` of the examples labelled ``labels`` ``(N,)``."""
        logits = logits.detach().cpu().double()
        labels = labels.detach().cpu().long()
        # The prediction is the logits' argmax, as the error counts it; the confidence comes from
        # softmax (exactly 0.5 for a tie of two, 1.0 for a far lead, so an edge is an edge) and
        # the likelihood from log_softmax (finite however small the probability).
        predictions = logits.argmax(dim=-1)
        probabilities = torch.softmax(logits, dim=-1)
        confidence = probabilities.amax(dim=-1)
        right = (predictions == labels).double()
        index = self.bin_of(confidence)
        self.counts += torch.bincount(index, minlength=self.bins)
        self.correct.index_add_(0, index, right)
        self.confidence.index_add_(0, index, confidence)
        self.nll -= torch.log_softmax(logits, dim=-1).gather(-1, labels[:, None]).sum()
        self.examples += len(labels)
        if self.top_only:
            return
        onehot = torch.nn.functional.one_hot(labels, logits.shape[-1]).double()
        self.brier += (probabilities - onehot).square().sum()
        self._add_classwise(probabilities, onehot)
        self.confidences.append(confidence)
        self.corrects.append(right)

    def bin_of(self, probability: Tensor) -> Tensor:
        """Bin b is (b / B, (b + 1) / B]: a probability on an edge belongs to the bin below it, 1.0
        to the last and 0 (an underflowed class probability) to the first."""
        return (torch.ceil(probability * self.bins).long() - 1).clamp_(0, self.bins - 1)

    def _add_classwise(self, probabilities: Tensor, onehot: Tensor) -> None:
        classes = probabilities.shape[-1]
        if self.class_counts is None:
            shape = (classes, self.bins)
            self.class_counts = torch.zeros(shape, dtype=torch.float64)
            self.class_hits = torch.zeros(shape, dtype=torch.float64)
            self.class_probability = torch.zeros(shape, dtype=torch.float64)
        elif self.class_counts.shape[0] != classes:
            raise ValueError(f"logits of {classes} classes after logits of {self.class_counts.shape[0]}")
        # Class k's bin b as one flat index k * B + b, so each sum is one index_add.
        flat = (self.bin_of(probabilities) + torch.arange(classes)[None, :] * self.bins).reshape(-1)
        for total, values in (
            (self.class_counts, torch.ones_like(probabilities)),
            (self.class_hits, onehot),
            (self.class_probability, probabilities),
        ):
            total.view(-1).index_add_(0, flat, values.reshape(-1))

    def binned(self) -> Calibration:
        """The ECE, MCE and bins of everything added so far (what bins alone can say)."""
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
    ordered, order = torch.sort(confidence.double(), stable=True)
    first_of_ties = torch.searchsorted(ordered, ordered, side="left")
    index = torch.div(first_of_ties * bins, count, rounding_mode="floor")
    gaps = torch.zeros(bins, dtype=torch.float64)
    gaps.index_add_(0, index, correct.double()[order] - ordered)
    return float(gaps.abs().sum() / count)


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T minimising the mean NLL of ``softmax(logits / T)`` for ``labels``: one
    scalar for the whole model (Guo et al. 2017, Section 4.2), fit on held-out logits.

    The NLL is minimised over log T on :data:`TEMPERATURE_RANGE` by scipy's bounded Brent search
    (a one-dimensional problem: no gradient steps to tune, the same T for the same logits).
    """
    if len(labels) == 0:
        raise ValueError("a temperature needs at least one example")
    logits = logits.detach().cpu().double()
    labels = labels.detach().cpu().long()[:, None]

    def nll(log_temperature: float) -> float:
        scaled = torch.log_softmax(logits / math.exp(log_temperature), dim=-1)
        return float(-scaled.gather(-1, labels).mean())

    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    # Brent's search never evaluates the bounds themselves; one that is best there is taken.
    best = min((float(found.x), low, high), key=nll)
    return math.exp(best)


def dev_calibration(logits: Tensor, labels: Tensor) -> tuple[float, dict[str, float]]:
    """The temperature fit on the dev split's ``logits`` and the dev figures of :data:`DEV_FIELDS`."""
    temperature = fit_temperature(logits, labels)
    raw, scaled = CalibrationSums(top_only=True), CalibrationSums(top_only=True)
    raw.add(logits, labels)
    scaled.add(logits.double() / temperature, labels)
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
    added batch by batch from the same logits (:class:`CalibrationSums` each)."""

    def __init__(self, temperature: float | None, bins: int = BINS) -> None:
        self.temperature = temperature
        self.raw = CalibrationSums(bins)
        self.scaled = None if temperature is None else CalibrationSums(bins)

    def add(self, logits: Tensor, labels: Tensor) -> None:
        self.raw.add(logits, labels)
        if self.scaled is not None and self.temperature is not None:
            self.scaled.add(logits.detach().double() / self.temperature, labels)

    def record(self, split: str) -> dict[str, Any]:
        """The raw figures, and with a temperature the scaled ones (``<split>_ece_scaled``, ...)
        and ``temperature``."""
        record = self.raw.result().record(split)
        if self.scaled is not None:
            record.update(self.scaled.result().record(split, SCALED))
            record["temperature"] = self.temperature
        return record


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
