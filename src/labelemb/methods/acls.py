"""Adaptive and conditional label smoothing (ACLS): cross-entropy plus squared hinges on the largest
logit and on the other logits' distance below it."""

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


@register("acls")
class AdaptiveConditionalLabelSmoothing(Stackable, Chunked, TargetMethod):
    """Cross-entropy plus ``alpha`` times a regulariser on the largest logit ``M = max_k z_k``::

        R = pos_lambda relu(M - margin)^2
            + neg_lambda / (m - 1) * sum_{k: z_k != M} relu(sg(M) - z_k - margin)^2
        L = H(y, softmax(z)) + alpha R

    Park et al. (ICCV 2023), "ACLS: Adaptive and Conditional Label Smoothing for Network
    Calibration", as the authors' code computes it (``calibrate/losses/acls.py``, ``ACLS.get_reg``;
    the paper's text was not at hand here). The first term holds the largest logit itself below
    ``margin`` and its gradient goes to that logit; the second pushes each other logit up to within
    ``margin`` of it, with ``M`` held constant there (their ``max_values.clone().detach()``), so
    that term never lowers the largest logit. Which logit is the largest is decided without gradient;
    the gold label plays no part in ``R``. Defaults are their config's (``configs/loss/acls.yaml``):
    ``alpha = 0.1``, ``margin = 10``, ``pos_lambda = 1``, ``neg_lambda = 0.1``. Their batch mean
    divides the first term by the rows and the second by rows x (m - 1), hence the ``1 / (m - 1)``;
    here both means run over the rows that count.

    Large label sets: ``chunk_size`` as for ``onehot``; with ``g_k = relu(M - z_k - margin)`` the
    gradient in the logits is ``p - onehot(y) + alpha (2 pos_lambda relu(M - margin) onehot(argmax z)
    - 2 neg_lambda / (m - 1) g)`` (``g`` is 0 at the largest logit).
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its regulariser holds down the largest logit of one softmax over mutually exclusive "
            "classes and lifts the others to within a margin of it; a tag set's sigmoids are "
            "independent, with several tags that should all score high"
        )
    }

    # alpha, the regulariser's weight (constructor: >= 0): 0.1 (theirs) inside, 1.0 the top; below 0.01
    # the squared hinges barely act beside the cross-entropy. Log.
    # margin, the logit level and gap the hinges allow (constructor: >= 0): 10 (theirs) inside; at 0
    # every logit is held at 0 and to the largest (a uniform prediction's pull), past 20 the hinges
    # seldom fire. Linear, as mbls's margin. pos_lambda and neg_lambda stay theirs: alpha scales both.
    search_space: ClassVar[dict[str, Space]] = {
        "alpha": Space.floats(0.01, 1.0, log=True),
        "margin": Space.floats(0.0, 20.0),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        alpha: float = 0.1,
        margin: float = 10.0,
        pos_lambda: float = 1.0,
        neg_lambda: float = 0.1,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        weights = {"alpha": alpha, "margin": margin, "pos_lambda": pos_lambda, "neg_lambda": neg_lambda}
        for name, value in weights.items():
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.alpha = alpha
        self.margin = margin
        self.pos_lambda = pos_lambda
        self.neg_lambda = neg_lambda

    def hinges(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Each row's regulariser ``R``, the largest logit ``M`` and its index (both keeping their
        dimension), and whether each logit equals ``M`` (no gradient)."""
        largest, top = logits.max(dim=-1, keepdim=True)
        is_largest = (logits == largest).detach()
        zero = logits.new_zeros(())
        # A logit tied with the largest counts as one too (their indicator); its term's gradient
        # goes, with the largest's, to the one logit the max picked.
        above = torch.where(is_largest, F.relu(largest - self.margin).square(), zero).sum(-1)
        below = torch.where(is_largest, zero, F.relu(largest.detach() - logits - self.margin).square())
        reg = self.pos_lambda * above + self.neg_lambda * below.sum(-1) / (self.num_classes - 1)
        return reg, largest, top, is_largest

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        return {"ce": -gold(F.log_softmax(logits, dim=-1), label), "reg": self.hinges(logits)[0]}

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0, "reg": self.alpha}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[H(y, p), R]`` and the gradient of ``H(y, p) + alpha R`` in the logits."""
        reg, largest, top, is_largest = self.hinges(logits)
        log_p = F.log_softmax(logits, dim=-1)
        terms = torch.cat([-log_p.gather(1, label[:, None]), reg[:, None]], dim=1)
        gaps = F.relu(largest - logits - self.margin).masked_fill_(is_largest, 0.0)
        ties = is_largest.sum(-1, keepdim=True).to(logits.dtype)
        push = F.relu(largest - self.margin).mul_(ties).mul_(2.0 * self.alpha * self.pos_lambda)
        scale = 2.0 * self.alpha * self.neg_lambda / (self.num_classes - 1)
        grad = subtract_at_labels(log_p.exp_(), label, 1.0).sub_(gaps.mul_(scale))
        return terms, grad.scatter_add_(1, top, push)
