"""MDCA: cross-entropy (or focal loss) plus the batch's per-class gap between mean confidence and share."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .processes import is_distributed
from .registry import register
from .rows import one_hot


@register("mdca")
class MDCALoss(Stackable, LinearOutputMethod):
    """A classification loss plus ``beta`` times the batch's multi-class difference in confidence
    and accuracy::

        MDCA = (1/m) sum_c | (1/N) sum_i p_ic - (1/N) sum_i [y_i = c] |,   p = softmax(z)
        L    = mean_i -(1 - p_iy)^gamma log p_iy + beta MDCA

    Hebbalaguppe et al. (CVPR 2022), "A Stitch in Time Saves Nine: A Train-Time Regularizing Loss
    for Improved Neural Network Calibration", the MDCA loss as the authors' code computes it
    (``solvers/loss.py``, ``MDCA`` and ``ClassficationAndMDCA``; the paper's text was not at hand
    here): for each class, the batch's mean predicted probability against the share of the batch
    labelled with it, nothing detached. ``gamma = 0`` (the default) is their NLL+MDCA, a
    ``gamma > 0`` their FL+MDCA (their ``FocalLoss``, the weight differentiated); their LS+MDCA is
    not implemented. ``beta = 1`` is their README's (both MDCA commands; their argument parser's
    default is 10).

    MDCA is a statistic of the batch, not a mean of per-row terms: a row's gradient depends on the
    other rows. Both of its means run over the rows that count; under ``torchrun`` its sums are
    added over the processes with gradient, so the step is that of the whole batch however it is
    split. Under gradient accumulation each micro-batch takes its own MDCA
    (:attr:`accumulation_caveat`; the adapters warn). No chunked head: the MDCA of a chunk is not
    the batch's. Logged: ``ce``, ``mdca`` and, for ``gamma > 0``, ``focal``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its loss is a cross-entropy to one label, and its statistic compares softmax "
            "probabilities, which share one unit of mass over the classes; a tag set has several "
            "labels and independent sigmoids"
        )
    }

    # beta, MDCA's weight (constructor: >= 0): 1 (their README's) and 10 (their argument parser's
    # default) inside; at 0.1 the term is a tenth of a class-mean gap of the order of 1/m, next to
    # nothing; past 20 it outweighs the classification loss by far. Log: it acts as a scale.
    # gamma is not searched: it names their variant (0 NLL+MDCA, > 0 FL+MDCA).
    search_space: ClassVar[dict[str, Space]] = {"beta": Space.floats(0.1, 20.0, log=True)}
    accumulation_caveat = (
        "its MDCA term compares each micro-batch's mean confidence per class with that micro-batch's "
        "class frequencies"
    )

    def __init__(
        self, in_features: int, num_classes: int, *, beta: float = 1.0, gamma: float = 0.0, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(beta) and beta >= 0.0):
            raise ValueError(f"beta must be a finite number >= 0 (MDCA's weight), got {beta}")
        if not (math.isfinite(gamma) and gamma >= 0.0):
            raise ValueError(f"gamma must be a finite number >= 0 (0: NLL+MDCA, > 0: FL+MDCA), got {gamma}")
        self.beta = beta
        self.gamma = gamma

    def mdca(self, log_p: Tensor, rows: Rows) -> Tensor:
        """The batch's ``(1/m) sum_c |mean_i p_ic - mean_i [y_i = c]|`` over the rows that count (of
        every process, under ``torchrun``); 0 for a batch with none."""
        weight = log_p.new_ones(log_p.shape[:-1]) if rows.weight is None else rows.weight.to(log_p.dtype)
        onehot = one_hot(rows.label, self.num_classes).to(log_p.dtype)
        # Confidence sums, label counts and the row count in one tensor: one collective when distributed.
        packed = torch.cat([log_p.exp(), onehot, log_p.new_ones(*log_p.shape[:-1], 1)], dim=-1)
        totals = (packed * weight.unsqueeze(-1)).sum(-2)
        if is_distributed():
            # Differentiable sum: each process's MDCA reaches every process's rows, so the averaged
            # gradients are those of the global batch's MDCA.
            # lazy: a PyTorch built without distributed support cannot import it (and never gets here).
            import torch.distributed.nn.functional as dist_fn

            totals = dist_fn.all_reduce(totals, op=torch.distributed.ReduceOp.SUM)
        m = self.num_classes
        count = totals[..., -1:].detach().clamp(min=1.0)
        gap = (totals[..., :m] - totals[..., m : 2 * m]) / count
        return gap.abs().mean(-1)

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        log_p_y = gold(log_p, rows.label)
        ce = rows.mean(-log_p_y)
        mdca = self.mdca(log_p, rows)
        terms = {"ce": ce, "mdca": mdca}
        classification = ce
        if self.gamma > 0:
            # 1 - p_y from expm1, kept from 0: a gamma below 1 has an infinite slope there (as focal's).
            one_minus = (-torch.expm1(log_p_y)).clamp(min=torch.finfo(log_p.dtype).tiny)
            classification = terms["focal"] = rows.mean(-one_minus.pow(self.gamma) * log_p_y)
        return MethodOutput(classification + self.beta * mdca, logits, terms)
