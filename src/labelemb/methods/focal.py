"""Focal loss: cross-entropy weighted down where the gold class is already likely (and FLSD-53)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Chunked, MultiHot, Stackable
from .base import gold
from .chunked import subtract_at_labels
from .multi_hot import log_p_true, tag_mean
from .registry import register
from .rows import MethodOutput
from .targets import TargetMethod


@register("focal")
class FocalLoss(Stackable, Chunked, MultiHot, TargetMethod):
    """Cross-entropy weighted by ``(1 - p_y)^gamma``, differentiated in full::

        L = -(1 - p_y)^gamma log p_y,   p = softmax(z)

    Lin et al. (2017), "Focal Loss for Dense Object Detection", Section 3.2 (Eq. 4, without the
    class weight alpha_t); for calibration, Mukhoti et al. (NeurIPS 2020), "Calibrating Deep
    Neural Networks using Focal Loss", Section 4, whose fixed-gamma setting FL-3 is the default
    (``gamma = 3``). The weight ``(1 - p_y)^gamma`` is differentiated (their code's
    ``-(1 - pt)**gamma * logpt`` with ``pt`` not detached), so the gradient in the logits is
    ``c (p - onehot(y))`` with ``c = (1 - p_y)^gamma - gamma p_y (1 - p_y)^(gamma - 1) log p_y``.

    Sample-dependent gamma (Mukhoti et al., Section 5, "FLSD"): with ``gamma_low`` set, a row
    whose ``sg(p_y) < p_low`` takes ``gamma_low`` instead of ``gamma``; the choice is made on the
    detached probability (their code reads ``pt[i].item()``), the loss of the chosen gamma is then
    differentiated as above. The preset ``flsd53`` is their FLSD-53: ``gamma_low = 5`` below
    ``p_low = 0.2``, ``gamma = 3`` elsewhere. ``gamma = 0`` (and no ``gamma_low``) is cross-entropy.

    The loss is averaged over the rows that count (their code sums over the batch by default;
    see docs/methods.md). ``ce`` is logged beside it (weight 0 in the loss).

    Large label sets: ``chunk_size`` as for ``onehot``, with the gradient above in closed form.

    Tag sets (multi-hot ``y`` in {0, 1}^K): the sigmoid focal loss of each tag, the paper's own
    binary form (Lin et al., Section 3.2, Eq. 4 with ``p_t`` of Eq. 2; without alpha)::

        L = mean_n sum_k -(1 - p_t)^gamma log p_t,   p_t = sigmoid(z_k) where y_k = 1, else 1 - sigmoid(z_k)

    the weight differentiated as above; with ``gamma_low`` set, a tag whose ``sg(p_t) < p_low``
    takes ``gamma_low`` (flsd53's rule, tag by tag). ``bce`` is logged beside it (weight 0).
    """

    # gamma, the focusing exponent (constructor: >= 0): 0 is cross-entropy, 3 (Mukhoti et al.'s
    # FL-3, our default) and Lin et al.'s sweep of 0-5 (their Table 1a) inside. Above 5 the weight is
    # under 0.03 already at p_y = 0.5, so rows stop teaching long before they are fitted. Linear:
    # the papers compare whole values. gamma_low and p_low stay FLSD's (a preset fixes them).
    search_space: ClassVar[dict[str, Space]] = {"gamma": Space.floats(0.0, 5.0)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        gamma: float = 3.0,
        gamma_low: float | None = None,
        p_low: float = 0.2,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(gamma) and gamma >= 0.0):
            raise ValueError(f"gamma must be a finite number >= 0 (0 is cross-entropy), got {gamma}")
        if gamma_low is not None and not (math.isfinite(gamma_low) and gamma_low >= 0.0):
            raise ValueError(
                f"gamma_low must be a finite number >= 0, or None for one gamma; got {gamma_low}"
            )
        if not 0.0 < p_low <= 1.0:
            raise ValueError(f"p_low must lie in (0, 1]: rows with p_y below it take gamma_low; got {p_low}")
        self.gamma = gamma
        self.gamma_low = gamma_low
        self.p_low = p_low

    def gammas(self, log_p_y: Tensor) -> Tensor | float:
        """Each row's exponent: ``gamma``, or, with ``gamma_low`` set, ``gamma_low`` where
        ``sg(p_y) < p_low``."""
        if self.gamma_low is None:
            return self.gamma
        low = log_p_y.detach().exp() < self.p_low
        return torch.where(low, self.gamma_low, self.gamma).to(log_p_y.dtype)

    def focal_terms(self, log_p_y: Tensor) -> tuple[Tensor, Tensor | float, Tensor]:
        """``-(1 - p_y)^gamma log p_y`` of each row, its exponent, and ``1 - p_y``.

        ``1 - p_y`` is ``-expm1(log p_y)`` (exact where p_y is near 1), kept from 0: where it rounds
        to 0 a gamma below 1 would give the weight an infinite derivative (0 * inf, NaN). The floor,
        the dtype's smallest normal number, leaves every other row as it is.
        """
        gamma = self.gammas(log_p_y)
        one_minus = (-torch.expm1(log_p_y)).clamp(min=torch.finfo(log_p_y.dtype).tiny)
        return -one_minus.pow(gamma) * log_p_y, gamma, one_minus

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p_y = gold(F.log_softmax(logits, dim=-1), label)
        focal, _, _ = self.focal_terms(log_p_y)
        return {"focal": focal, "ce": -log_p_y}

    def row_terms(self) -> dict[str, float]:
        return {"focal": 1.0, "ce": 0.0}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[focal, -log p_y]`` and the focal loss's gradient in the logits,
        ``c (p - onehot(y))``."""
        log_p = F.log_softmax(logits, dim=-1)
        log_p_y = log_p.gather(1, label[:, None])
        focal, gamma, one_minus = self.focal_terms(log_p_y)
        weight = one_minus.pow(gamma)
        # c = w - gamma p_y log p_y w / (1 - p_y): the weight's own derivative taken with the log.
        factor = weight - gamma * log_p_y.exp() * log_p_y * weight / one_minus
        grad = subtract_at_labels(log_p.exp_(), label, 1.0).mul_(factor)
        return torch.cat([focal, -log_p_y], dim=1), grad

    def tag_loss(self, logits: Tensor, tags: Tensor, features: Tensor) -> MethodOutput:
        """``-(1 - p_t)^gamma log p_t`` of each tag, summed over the tags and averaged over the rows."""
        log_p_t = log_p_true(logits, tags)
        focal, _, _ = self.focal_terms(log_p_t)
        loss = tag_mean(focal)
        return MethodOutput(loss, logits, {"focal": loss, "bce": tag_mean(-log_p_t)})


register("flsd53", gamma=3.0, gamma_low=5.0, p_low=0.2)(FocalLoss)
