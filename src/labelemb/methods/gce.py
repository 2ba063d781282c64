"""Generalized cross-entropy (Zhang & Sabuncu 2018): between cross-entropy and MAE, for noisy labels."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import gold
from .registry import register
from .targets import TargetMethod


@register("gce")
class GeneralizedCrossEntropy(Stackable, TargetMethod):
    """The negative Box-Cox transform of the gold probability::

        L_q = (1 - p_y^q) / q,   p = softmax(z)                                       (q = 0.7)

    Zhang & Sabuncu (NeurIPS 2018), "Generalized Cross Entropy Loss for Training Deep Neural
    Networks with Noisy Labels", Section 3 (the L_q loss). As ``q -> 0`` it tends to the
    cross-entropy, at ``q = 1`` it is ``1 - p_y``, the mean absolute error up to a factor 2, which
    is robust to label noise but slow to train; between, its gradient in the logits is the
    cross-entropy's weighted by ``p_y^q``, ``p_y^q (p - onehot(y))``, so a row the network finds
    unlikely (often a wrong label) teaches less. ``q = 0.7`` is the paper's, and that of every config
    of Active-Passive-Losses' ``GeneralizedCrossEntropy`` (the code we checked it against).

    ``p_y^q`` is ``exp(q log p_y)`` and ``1 - p_y^q`` is ``-expm1(q log p_y)``, exact where ``p_y``
    nears 1 or underflows. The loss is averaged over the rows that count; ``ce`` is logged beside
    it (weight 0). The paper's truncated loss (``L_trunc``, its Section 3.2, with the pruning of
    rows by a threshold ``k`` every few epochs) is not implemented.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "it is a Box-Cox transform of the gold class's softmax probability p_y; a tag set has no "
            "one gold class"
        )
    }

    # q, the Box-Cox exponent (constructor: (0, 1]): the paper's 0.7 inside; at 1 it is the MAE, which
    # underfits, and towards 0 the cross-entropy, whose robustness it gives up: at 0.1 the weight p_y^q
    # is above 0.93 wherever p_y > 0.5, next to the cross-entropy's 1.
    search_space: ClassVar[dict[str, Space]] = {"q": Space.floats(0.1, 1.0)}

    def __init__(self, in_features: int, num_classes: int, *, q: float = 0.7, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(q) and 0.0 < q <= 1.0):
            raise ValueError(f"q must lie in (0, 1] (towards 0 the loss is the cross-entropy), got {q}")
        self.q = q

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p_y = gold(F.log_softmax(logits, dim=-1), label)
        return {"gce": -torch.expm1(self.q * log_p_y) / self.q, "ce": -log_p_y}

    def row_terms(self) -> dict[str, float]:
        return {"gce": 1.0, "ce": 0.0}
