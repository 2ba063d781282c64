"""Normalized plus reverse cross-entropy (Ma et al. 2020): an active-passive loss for noisy labels."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import gold
from .registry import register
from .sce import TARGET_FLOOR, check_target_floor, check_term_weights, reverse_cross_entropy
from .targets import TargetMethod


@register("nce_rce")
class NCEPlusRCE(Stackable, TargetMethod):
    """The normalized cross-entropy (active) plus the reverse cross-entropy (passive)::

        NCE = log p_y / sum_k log p_k          (the cross-entropy over its sum across all labels)
        RCE = A (1 - p_y),   A = -log 1e-4     (as in ``sce``: the one-hot target floored at 1e-4)
        L   = alpha NCE + beta RCE                                             (alpha = 1, beta = 1)

    Ma et al. (ICML 2020), "Normalized Loss Functions for Deep Learning with Noisy Labels":
    Section 3 (normalizing a loss, ``L(f(x), y) / sum_j L(f(x), j)``, makes it robust to label
    noise but underfits) and Section 4 (the active-passive loss: a normalized active loss, which
    raises ``p_y``, beside a passive one, which lowers the other probabilities, ``NCE+RCE``). The
    normalizer is differentiated, as in the authors' ``NormalizedCrossEntropy``. ``alpha = 1`` and
    ``beta = 1`` are the authors' CIFAR-10 setting (Active-Passive-Losses,
    ``configs/cifar10/sym/nce+rce.yaml``); their MNIST configs use ``beta = 10``, CIFAR-100's
    ``alpha = 10, beta = 0.1``. Both terms are averaged over the rows that count.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its normalised cross-entropy divides log p_y by the sum of log p_k over one softmax's "
            "classes, and both its terms need one gold class; a tag set has several"
        )
    }

    # alpha, NCE's weight, and beta, RCE's (constructor: >= 0, not both 0): the authors' 1 and 1
    # (CIFAR-10), 1 and 10 (MNIST), 10 and 0.1 (CIFAR-100) inside. Log: they act by ratio.
    search_space: ClassVar[dict[str, Space]] = {
        "alpha": Space.floats(0.1, 10.0, log=True),
        "beta": Space.floats(0.1, 10.0, log=True),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        target_floor: float = TARGET_FLOOR,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        check_term_weights(alpha, beta)
        check_target_floor(target_floor)
        self.alpha = alpha
        self.beta = beta
        self.target_floor = target_floor

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        log_p_y = gold(log_p, label)
        return {
            "nce": log_p_y / log_p.sum(dim=-1),
            "rce": reverse_cross_entropy(log_p_y, self.target_floor),
            "ce": -log_p_y,
        }

    def row_terms(self) -> dict[str, float]:
        return {"nce": self.alpha, "rce": self.beta, "ce": 0.0}
