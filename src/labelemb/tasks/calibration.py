"""Calibration of a classifier's predictions: expected calibration error, negative log-likelihood,
and the per-bin figures of a reliability diagram.

Every classification task records these for its test split at each check (``test_ece``,
``test_nll``, ``test_calibration``), and the run's summary keeps them at the selected check
(``selected_test_ece``, ...): :data:`CALIBRATION_FIELDS`. They are computed here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: Equal-width confidence bins, as in Guo et al. (2017) "On calibration of modern neural networks".
BINS = 15

#: The record keys a classification task adds at each check, which the summary keeps at the
#: selected check as ``selected_<key>``.
CALIBRATION_FIELDS = ("test_ece", "test_nll", "test_calibration")


@dataclass(frozen=True)
class Calibration:
    """Calibration of one set of predictions.

    ``ece`` is in percent (0-100, like the error), ``nll`` in nats per example. Bin ``b`` of
    ``bins`` holds the confidences in ``(b / bins, (b + 1) / bins]``; ``counts[b]`` examples fell
    in it, ``accuracy[b]`` and ``confidence[b]`` are their accuracy and mean confidence (fractions;
    None for an empty bin).
    """

    ece: float
    nll: float
    counts: list[int]
    accuracy: list[float | None]
    confidence: list[float | None]

    @property
    def bins(self) -> int:
        return len(self.counts)

    def record(self, split: str) -> dict[str, Any]:
        """The fields of a check's record: ``<split>_ece``, ``<split>_nll`` and the bins."""
        bins = {"bins": self.bins, "counts": self.counts, "accuracy": self.accuracy}
        return {
            f"{split}_ece": self.ece,
            f"{split}_nll": self.nll,
            f"{split}_calibration": {**bins, "confidence": self.confidence},
        }


class CalibrationSums:
    """Per-bin counts, correct predictions and summed confidences, and the summed negative
    log-likelihood, added batch by batch so a split's logits never need to be held at once."""

    def __init__(self, bins: int = BINS) -> None:
        if bins < 1:
            raise ValueError(f"calibration needs at least one bin, got {bins}")
        self.bins = bins
        # On the CPU in float64: sums over a whole split, on any device (MPS has no float64).
        self.counts = torch.zeros(bins, dtype=torch.int64)
        self.correct = torch.zeros(bins, dtype=torch.float64)
        self.confidence = torch.zeros(bins, dtype=torch.float64)
        self.nll = torch.zeros((), dtype=torch.float64)
        self.examples = 0

    def add(self, logits: Tensor, labels: Tensor) -> None:
        """Count the predictions ``logits`` ``(N, m)`` of the examples labelled ``labels`` ``(N,)``."""
        logits = logits.detach().cpu().double()
        labels = labels.detach().cpu().long()
        # The prediction is the logits' argmax, as the error counts it; the confidence comes from
        # softmax (exactly 0.5 for a tie of two, 1.0 for a far lead, so an edge is an edge) and
        # the likelihood from log_softmax (finite however small the probability).
        predictions = logits.argmax(dim=-1)
        confidence = torch.softmax(logits, dim=-1).amax(dim=-1)
        log_probs = torch.log_softmax(logits, dim=-1)
        # Bin b is (b / B, (b + 1) / B]: a confidence on an edge belongs to the bin below it, and
        # 1.0 to the last. Confidence is at least 1/m > 0, so the clamp only guards rounding.
        index = (torch.ceil(confidence * self.bins).long() - 1).clamp_(0, self.bins - 1)
        self.counts += torch.bincount(index, minlength=self.bins)
        self.correct.index_add_(0, index, (predictions == labels).double())
        self.confidence.index_add_(0, index, confidence)
        self.nll -= log_probs.gather(-1, labels[:, None]).sum()
        self.examples += len(labels)

    def result(self) -> Calibration:
        """ECE (%), mean NLL and the bins of everything added so far."""
        if self.examples == 0:
            raise ValueError("calibration of no examples")
        counts = self.counts.double()
        # sum_b |B_b| / N * |acc_b - conf_b| = sum_b |correct_b - confidence sum_b| / N
        ece = float((self.correct - self.confidence).abs().sum() / self.examples)
        filled = self.counts > 0
        accuracy = torch.where(filled, self.correct / counts.clamp(min=1), torch.nan)
        confidence = torch.where(filled, self.confidence / counts.clamp(min=1), torch.nan)
        return Calibration(
            ece=100.0 * ece,
            nll=float(self.nll / self.examples),
            counts=self.counts.tolist(),
            accuracy=[None if v != v else v for v in accuracy.tolist()],
            confidence=[None if v != v else v for v in confidence.tolist()],
        )


def pooled_bins(bins: Sequence[Mapping[str, Any]]) -> Calibration:
    """Several evaluations' bins (each a ``test_calibration`` record, e.g. every seed's selected
    check) pooled as one set of predictions: counts added, accuracy and confidence weighted by
    count. Its ECE is that of the pooled predictions; its NLL is nan (the bins do not hold it)."""
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
    sums.nll.fill_(torch.nan)
    return sums.result()


def measure_calibration(logits: Tensor, labels: Tensor, bins: int = BINS) -> Calibration:
    """Expected calibration error and mean negative log-likelihood of ``logits`` ``(N, m)`` for
    ``labels`` ``(N,)``, with the per-bin figures of a reliability diagram.

    With p = softmax(logits), confidence c_i = max_k p_ik, prediction argmax_k of the logits (the
    first of equals, as the error counts it), and bins b = 0 .. bins - 1 of equal width,
    B_b = {i : c_i in (b / bins, (b + 1) / bins]} (right-closed: a confidence on an edge falls in
    the bin below it, 1.0 in the last; 15 bins by default, (0, 1/15], (1/15, 2/15], ...):

        ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|    (reported in percent)
        NLL = -(1 / N) sum_i log p_{i, y_i}               (nats, from log_softmax of the logits)

    where acc(B_b) is the fraction of B_b predicted right and conf(B_b) its mean confidence;
    empty bins contribute nothing. Computed in float64 on the CPU.
    """
    sums = CalibrationSums(bins)
    sums.add(logits, labels)
    return sums.result()
