"""Margin-based label smoothing (MbLS): cross-entropy plus a hinge on logit gaps wider than a margin."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Chunked, Stackable
from .base import gold
from .chunked import subtract_at_labels
from .registry import register
from .targets import TargetMethod


@register("mbls")
class MarginLabelSmoothing(Stackable, Chunked, TargetMethod):
    """Cross-entropy plus ``alpha`` times the mean hinge on the gaps to the largest logit::

        L = H(y, softmax(z)) + alpha * (1/m) sum_j max(0, max_k z_k - z_j - margin)

    Liu et al. (CVPR 2022), "The Devil is in the Margin: Margin-based Label Smoothing for
    Network Calibration", Section 3, the margin's linear penalty (their lambda is ``alpha`` here,
    as in their code: ``lambda`` is a Python keyword). Defaults are the paper's: ``margin = 10``,
    ``alpha = 0.1``. The paper writes a sum over the classes; their code (``LogitMarginL1``)
    takes the mean over the ``m`` classes (and the rows), and their README trains with
    ``alpha = 0.1`` through it, hence the ``1/m``: ``alpha = 0.1`` weighs the penalty as it did
    there. ``max_k z_k`` is differentiated too (its gradient goes to the largest logit), as in
    their code; the gold label plays no part in the penalty. Both terms are averaged over the rows that count.

    Large label sets: ``chunk_size`` as for ``onehot``; the gradient in the logits is
    ``p - onehot(y) + (alpha / m) (a onehot(argmax z) - active)``, ``active_j = [gap_j > margin]``,
    ``a = sum_j active_j``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its hinge holds every logit within a margin of the largest one of a softmax; with "
            "several present tags there is no one largest logit to stay near"
        )
    }

    # margin, the logit gap allowed before the penalty starts (constructor: >= 0): 0 asks every logit
    # to equal the largest (the equality constraint the paper reads label smoothing as, Section 3);
    # 10 (the paper's default) inside; past 20 a gap is worth a probability ratio of e^-20 and the
    # penalty seldom fires. Linear, as the paper's ablation over m (Section 4).
    # alpha, the penalty's weight (their lambda, constructor: >= 0): 0.1 (the paper's) inside, 1.0
    # (their config file's default) the top; below 0.01 the class-mean hinge does next to nothing. Log.
    search_space: ClassVar[dict[str, Space]] = {
        "margin": Space.floats(0.0, 20.0),
        "alpha": Space.floats(0.01, 1.0, log=True),
    }

    def __init__(
        self, in_features: int, num_classes: int, *, margin: float = 10.0, alpha: float = 0.1, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(margin) and margin >= 0.0):
            raise ValueError(f"margin must be a finite number >= 0 (a logit gap), got {margin}")
        if not (math.isfinite(alpha) and alpha >= 0.0):
            raise ValueError(f"alpha must be a finite number >= 0 (the penalty's weight), got {alpha}")
        self.margin = margin
        self.alpha = alpha

    def hinge(self, logits: Tensor) -> Tensor:
        """Each row's ``(1/m) sum_j max(0, max_k z_k - z_j - margin)``, differentiated through the max."""
        largest = logits.max(dim=-1, keepdim=True).values
        return F.relu(largest - logits - self.margin).mean(dim=-1)

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        return {"ce": -gold(F.log_softmax(logits, dim=-1), label), "margin": self.hinge(logits)}

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0, "margin": self.alpha}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[H(y, p), hinge]`` and the gradient of ``H(y, p) + alpha hinge`` in the logits."""
        largest, top = logits.max(dim=-1, keepdim=True)
        gap = largest - logits - self.margin
        active = (gap > 0).to(logits.dtype)
        hinge = gap.clamp_(min=0.0).mean(dim=-1, keepdim=True)
        log_p = F.log_softmax(logits, dim=-1)
        terms = torch.cat([-log_p.gather(1, label[:, None]), hinge], dim=1)
        scale = self.alpha / self.num_classes
        # The hinge's gradient: -1 at each active class, +1 per active class at the largest logit.
        push = active.sum(dim=-1, keepdim=True).mul_(scale)
        grad = subtract_at_labels(log_p.exp_(), label, 1.0).sub_(active.mul_(scale))
        return terms, grad.scatter_add_(1, top, push)
