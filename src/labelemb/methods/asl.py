"""Asymmetric loss (ASL): a tag set's loss that weighs its absent tags down and drops the easy ones."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import MultiHot, Stackable
from .base import LinearOutputMethod
from .multi_hot import tag_bce, tag_mean
from .registry import register
from .rows import MethodOutput, Rows


@register("asl")
class AsymmetricLoss(Stackable, MultiHot, LinearOutputMethod):
    """Asymmetric loss on tag sets, each tag's probability ``p = sigmoid(z)``, ``z = W h + b``::

        L+ = (1 - p)^gamma_pos log p                                     (a tag the row carries)
        L- = p_m^gamma_neg log(1 - p_m),   p_m = max(p - clip, 0)        (a tag it does not carry)
        L  = mean_n -sum_k [y_k L+ + (1 - y_k) L-]

    Ridnik, Ben-Baruch et al. (ICCV 2021), "Asymmetric Loss For Multi-Label Classification",
    Section 3: asymmetric focusing (a focal weight of its own for the present and the absent tags,
    so that the many easy absent tags stop drowning the few present ones) and asymmetric
    probability shifting (an absent tag whose probability is under ``clip`` adds exactly nothing,
    and a very likely one, maybe a missing label, is weighed down). Defaults are the paper's and
    the authors' training scripts': ``gamma_neg = 4``, ``gamma_pos = 0``, ``clip = 0.05``.
    ``gamma_neg = gamma_pos = clip = 0`` is the binary cross-entropy (``onehot``'s tag loss).

    The focusing weights are differentiated (the paper's loss and its gradient analysis, and the
    authors' ``AsymmetricLossOptimized``; their ``AsymmetricLoss`` detaches them by default,
    ``disable_torch_grad_focal_loss=True``). Their code clamps the probabilities at 1e-8
    before the logarithm and sums over the batch; here ``log p`` is ``logsigmoid(z)``, ``log(1 - p_m)``
    is ``log1p(-p_m)`` (at least ``log clip``) or, without a shift, ``logsigmoid(-z)``, and the loss
    is summed over the tags and averaged over the rows. ``bce`` is logged beside it (weight 0).

    Tag sets only: a single label's classes are one softmax's, which ``onehot`` and ``focal`` train.
    """

    serves = frozenset({"tags"})
    cannot_serve = {
        "class": "it weighs the present and the absent tags of a tag set's independent sigmoids apart, for "
        "the imbalance of few present tags to many absent ones; a row of one class out of m is a softmax's "
        "task (onehot, focal)",
        "token": "it is a loss over tag sets, and a sequence model's token row has one target token out of a "
        "vocabulary (a softmax's task)",
    }
    # gamma_neg, the absent tags' focusing exponent (constructor: >= 0): 0 switches it off, 4 (the
    # paper's) inside; above 6 an absent tag at p = 0.5 already weighs under 0.016. gamma_pos, the
    # present tags' (>= 0): 0 (the paper's, present tags keep their whole cross-entropy) to 2: more
    # would weigh down the rare present tags the loss is built to keep. clip, the shift (constructor:
    # [0, 1)): 0 (no shift) to 0.2, where every absent tag under 0.2 would add nothing.
    search_space: ClassVar[dict[str, Space]] = {
        "gamma_neg": Space.floats(0.0, 6.0),
        "gamma_pos": Space.floats(0.0, 2.0),
        "clip": Space.floats(0.0, 0.2),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        for name, gamma in (("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos)):
            if not (math.isfinite(gamma) and gamma >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0 (0: no focusing), got {gamma}")
        if not 0.0 <= clip < 1.0:
            raise ValueError(
                f"clip must lie in [0, 1) (an absent tag whose probability is under it adds nothing), "
                f"got {clip}"
            )
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip

    def compute_loss(self, outputs: Any, rows: Rows, features: Tensor, index: Tensor | None) -> MethodOutput:
        raise TypeError(
            f"asl trains on tag sets only (a bool (N, {self.num_classes}) target): "
            f"{self.cannot_serve['class']}"
        )

    def tag_terms(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Each tag's ``L+`` (as if the row carried it) and ``L-`` (as if not), ``(..., N, K)``."""
        tiny = torch.finfo(logits.dtype).tiny
        # 1 - p is sigmoid(-z), exact where p nears 1; kept from 0 so that a gamma below 1 never
        # meets an infinite derivative there.
        positive = torch.sigmoid(-logits).clamp(min=tiny).pow(self.gamma_pos) * F.logsigmoid(logits)
        if self.clip > 0.0:
            shifted = (torch.sigmoid(logits) - self.clip).clamp(min=0.0)
            log_absent = torch.log1p(-shifted)  # at least log(clip): finite, and exactly 0 where p_m is
        else:
            shifted = torch.sigmoid(logits)
            log_absent = F.logsigmoid(-logits)
        # Where p_m is 0 the term is 0 * tiny^gamma_neg = 0 exactly, with a zero gradient.
        negative = shifted.clamp(min=tiny).pow(self.gamma_neg) * log_absent
        return positive, negative

    def tag_loss(self, logits: Tensor, tags: Tensor, features: Tensor) -> MethodOutput:
        """``-[y L+ + (1 - y) L-]`` of each tag, summed over the tags and averaged over the rows."""
        positive, negative = self.tag_terms(logits)
        loss = tag_mean(-torch.where(tags, positive, negative))
        with torch.no_grad():  # logged beside the loss, never differentiated: no graph to keep
            bce = tag_mean(tag_bce(logits, tags))
        return MethodOutput(loss, logits, {"asl": loss, "bce": bce})
