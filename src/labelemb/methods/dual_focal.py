"""Dual focal loss: focal loss whose weight also reads the largest probability ranked below the gold one."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Chunked, Stackable
from .base import gold
from .registry import register
from .targets import TargetMethod


@register("dual_focal")
class DualFocalLoss(Stackable, Chunked, TargetMethod):
    """Cross-entropy weighted by ``(1 - p_y + p_j)^gamma``, differentiated in full::

        p_j = max {p_k : p_k < p_y}     (0 when no class is below the gold one; chosen without gradient)
        L   = -(1 - p_y + p_j)^gamma log p_y,   p = softmax(z)

    Tao, Dong & Xu (ICML 2023), "Dual Focal Loss for Calibration", as the authors' code computes it
    (``dual_focal_loss.py``; the paper's text beyond its abstract was not at hand here): besides the
    gold probability, the weight reads "the highest logit ranked after the ground truth logit", the
    largest probability strictly below ``p_y``, so a confidently right row with a close runner-up
    keeps more of its loss than under focal loss. Where the prediction is wrong, ``p_j`` is still
    the largest below ``p_y``, not the top class. Which class is ``j`` is decided without gradient;
    the weight itself, ``p_y`` and ``p_j`` both, is differentiated (their ``p_k`` and ``p_j`` are
    not detached). ``gamma = 0`` is cross-entropy. The default ``gamma = 5`` is their README's
    value for ResNet-50 on CIFAR-10 and CIFAR-100 (their class's own default, 0, is cross-entropy).

    ``1 - p_y`` is ``-expm1(log p_y)`` and the weight's base is kept from 0 (at the dtype's smallest
    normal number), as for ``focal``. The loss is averaged over the rows that count (their code
    sums over the batch by default; see docs/methods.md). ``ce`` is logged beside it (weight 0).

    Large label sets: ``chunk_size`` as for ``onehot``; with ``w = 1 - p_y + p_j`` and
    ``c = -gamma w^(gamma - 1) log p_y`` the gradient in the logits is
    ``w^gamma (p - onehot(y)) + c (p_j (onehot(j) - p) - p_y (onehot(y) - p))``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its weight reads the gold class's softmax probability and the largest one ranked below "
            "it; a tag set has no one gold class, and independent sigmoids no ranking against it"
        )
    }

    # gamma, the focusing exponent (constructor: >= 0): 0 is cross-entropy; their README's tuned values
    # (2.3 to 6.1 over four networks and three data sets) and our default 5 inside. The weight's base
    # 1 - p_y + p_j stays near 1 while a runner-up is close, so larger gammas than focal's still
    # teach; past 8 a row with p_y = 0.6 and p_j = 0.3 keeps under half its loss. Linear, as focal's.
    search_space: ClassVar[dict[str, Space]] = {"gamma": Space.floats(0.0, 8.0)}

    def __init__(self, in_features: int, num_classes: int, *, gamma: float = 5.0, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(gamma) and gamma >= 0.0):
            raise ValueError(f"gamma must be a finite number >= 0 (0 is cross-entropy), got {gamma}")
        self.gamma = gamma

    def dual_terms(self, log_p: Tensor, label: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Each row's loss ``-(1 - p_y + p_j)^gamma log p_y`` (keeping its dimension), the base
        ``w = 1 - p_y + p_j``, ``p_j`` and the index ``j`` (any class where ``p_j`` is 0)."""
        p = log_p.exp()
        log_p_y = log_p.gather(-1, label.unsqueeze(-1))
        below = p < log_p_y.exp()
        p_j, j = torch.where(below, p, 0.0).max(dim=-1, keepdim=True)
        base = (p_j - torch.expm1(log_p_y)).clamp(min=torch.finfo(log_p.dtype).tiny)
        return -base.pow(self.gamma) * log_p_y, base, p_j, j

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        dual, _, _, _ = self.dual_terms(log_p, label)
        return {"dual_focal": dual.squeeze(-1), "ce": -gold(log_p, label)}

    def row_terms(self) -> dict[str, float]:
        return {"dual_focal": 1.0, "ce": 0.0}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[dual focal, -log p_y]`` and the dual focal loss's gradient in the logits."""
        log_p = F.log_softmax(logits, dim=-1)
        dual, base, p_j, j = self.dual_terms(log_p, label)
        log_p_y = log_p.gather(1, label[:, None])
        p_y = log_p_y.exp()
        weight = base.pow(self.gamma)
        slope = -self.gamma * base.pow(self.gamma - 1.0) * log_p_y
        # grad = (w^g + c (p_y - p_j)) p - (w^g + c p_y) onehot(y) + c p_j onehot(j)
        grad = log_p.exp_().mul_(weight + slope * (p_y - p_j))
        grad.scatter_add_(1, label[:, None], -(weight + slope * p_y))
        grad.scatter_add_(1, j, slope * p_j)
        return torch.cat([dual, -log_p_y], dim=1), grad
