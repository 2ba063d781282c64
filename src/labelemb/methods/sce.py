"""Symmetric cross-entropy (Wang et al. 2019): cross-entropy plus its reverse, for noisy labels."""

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

#: The authors' floor of the one-hot target in the reverse cross-entropy (their ``clamp(min=1e-4)``).
TARGET_FLOOR = 1e-4


def reverse_cross_entropy(log_p_y: Tensor, target_floor: float = TARGET_FLOOR) -> Tensor:
    """``H(p, q) = -sum_k p_k log q_k`` of each row, ``q`` the one-hot label floored at ``target_floor``.

    The gold entry is 1 (``log 1 = 0``) and each other is ``target_floor``, so the sum is
    ``A (1 - p_y)`` with ``A = -log(target_floor)`` (9.21 for the authors' 1e-4): ``log 0``
    replaced by a finite number. Written from ``log p_y`` (``1 - p_y`` as ``-expm1``, exact near 1).
    """
    return -math.log(target_floor) * -torch.expm1(log_p_y)


def check_target_floor(target_floor: float) -> None:
    """The floor must make ``A = -log(target_floor)`` finite and positive."""
    if not (math.isfinite(target_floor) and 0.0 < target_floor < 1.0):
        raise ValueError(
            f"target_floor (the one-hot target's floor, A = -log of it) must lie in (0, 1): {target_floor}"
        )


@register("sce")
class SymmetricCrossEntropy(Stackable, TargetMethod):
    """Cross-entropy plus the reverse cross-entropy, the prediction and the label swapped::

        L   = alpha H(y, p) + beta RCE,     p = softmax(z)                 (alpha = 0.1, beta = 1)
        RCE = H(p, q) = -sum_k p_k log q_k = A (1 - p_y),   q = max(onehot(y), 1e-4),  A = -log 1e-4

    Wang et al. (ICCV 2019), "Symmetric Cross Entropy for Robust Learning with Noisy Labels",
    Section 3 (the SL loss). The reverse term is robust to label noise (it is the MAE up to the
    constant ``A / 2``) and keeps learning the classes the cross-entropy underfits; the
    cross-entropy keeps it training fast. ``log 0`` in the reverse term is replaced by a finite
    constant as the authors' code does it, by clamping the one-hot target at ``target_floor`` =
    1e-4, so ``A = 9.21``. The gradient in the logits is ``(alpha + beta A p_y) (p - onehot(y))``.

    ``alpha = 0.1`` and ``beta = 1`` are the authors' CIFAR-10 setting (their SCELoss-Reproduce
    README, and the CIFAR-10 configs of Active-Passive-Losses); MNIST's there is ``alpha = 0.01``,
    CIFAR-100's ``alpha = 6``. Both terms are averaged over the rows that count.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its reverse cross-entropy H(p, q) takes the softmax prediction p as a distribution "
            "against the clamped one-hot label q; a tag set has no one-hot label, and its sigmoids no "
            "distribution"
        )
    }

    # alpha, the cross-entropy's weight, and beta, the reverse term's (constructor: >= 0, not both 0):
    # the authors' 0.01 (MNIST), 0.1 (CIFAR-10) and 6 (CIFAR-100) for alpha, 1 for beta, inside. Log:
    # they act by ratio (under Adam the ratio alone matters). Beyond 10 either term swamps the other.
    search_space: ClassVar[dict[str, Space]] = {
        "alpha": Space.floats(0.01, 10.0, log=True),
        "beta": Space.floats(0.1, 10.0, log=True),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        alpha: float = 0.1,
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
        log_p_y = gold(F.log_softmax(logits, dim=-1), label)
        return {"ce": -log_p_y, "rce": reverse_cross_entropy(log_p_y, self.target_floor)}

    def row_terms(self) -> dict[str, float]:
        return {"ce": self.alpha, "rce": self.beta}


def check_term_weights(alpha: float, beta: float) -> None:
    """Two finite weights >= 0 of which one at least is positive (else the loss is 0)."""
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} (a term's weight in the loss) must be finite and >= 0, got {value}")
    if alpha == 0.0 and beta == 0.0:
        raise ValueError("alpha and beta are both 0: the loss would be 0; give one of them a positive weight")
