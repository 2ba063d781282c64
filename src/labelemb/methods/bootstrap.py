"""Bootstrapping (Reed et al. 2015): the target mixes the noisy label with the network's own prediction."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import gold
from .registry import register
from .targets import TargetMethod


class Bootstrapping(Stackable, TargetMethod):
    """Cross-entropy against ``beta onehot(y) + (1 - beta) b``, ``b`` the network's own belief::

        L = -sum_k (beta onehot(y)_k + (1 - beta) b_k) log p_k = beta H(y, p) + (1 - beta) H(b, p)

    Reed et al. (ICLR 2015 workshop), "Training Deep Neural Networks on Noisy Labels with
    Bootstrapping", Section 3: ``b = p`` (soft bootstrapping, :class:`SoftBootstrapping`) or
    ``b = onehot(argmax_k p_k)`` (hard, :class:`HardBootstrapping`). The two share this formula and
    differ in ``b`` (:meth:`bootstrap_term`). ``beta = 1`` is the cross-entropy. Both terms are
    averaged over the rows that count.
    """

    # beta, the label's share of the target (constructor: [0, 1]): the paper's 0.95 (soft) and 0.8
    # (hard) inside, 1 the cross-entropy. Below 0.5 the network's own guess outweighs the label and
    # can confirm itself from the first steps on.
    search_space: ClassVar[dict[str, Space]] = {"beta": Space.floats(0.5, 1.0)}

    def __init__(self, in_features: int, num_classes: int, *, beta: float, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(beta) and 0.0 <= beta <= 1.0):
            raise ValueError(
                f"beta (the label's share of the target; 1: cross-entropy) must lie in [0, 1], got {beta}"
            )
        self.beta = beta

    def bootstrap_term(self, log_p: Tensor) -> Tensor:
        """Each row's ``H(b, p)``, ``b`` the network's belief, from ``log_p = log_softmax(z)``."""
        raise NotImplementedError

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        return {"ce": -gold(log_p, label), "bootstrap": self.bootstrap_term(log_p)}

    def row_terms(self) -> dict[str, float]:
        return {"ce": self.beta, "bootstrap": 1.0 - self.beta}


@register("bootstrap_soft")
class SoftBootstrapping(Bootstrapping):
    """Soft bootstrapping, ``b = p``: ``L = beta H(y, p) + (1 - beta) H(p)``, the second term the
    prediction's entropy (``beta = 0.95``, the paper's).

    The prediction in the target is differentiated by default: Reed et al. present soft
    bootstrapping as equivalent to softmax regression with minimum-entropy regularisation
    (Grandvalet & Bengio), which it is only with ``b``'s gradient kept, so the loss lowers the
    prediction's entropy as well as fitting the label. Several reimplementations detach it instead
    (a pseudo-label, e.g. the ``as_pseudo_label=True`` default of a widely copied PyTorch
    ``SoftBootstrappingLoss``); ``detach=True`` gives that form, ``H(sg(p), p)``, whose gradient in
    the logits is ``p - beta onehot(y) - (1 - beta) sg(p)``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its target mixes the one-hot label with the prediction's softmax distribution over "
            "mutually exclusive classes (b = p); a tag set has no one-hot label, and its sigmoids are "
            "no distribution"
        )
    }

    def __init__(
        self, in_features: int, num_classes: int, *, beta: float = 0.95, detach: bool = False, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, beta=beta, **options)
        self.detach = bool(detach)

    def bootstrap_term(self, log_p: Tensor) -> Tensor:
        belief = log_p.exp()
        return -((belief.detach() if self.detach else belief) * log_p).sum(dim=-1)


@register("bootstrap_hard")
class HardBootstrapping(Bootstrapping):
    """Hard bootstrapping, ``b = onehot(argmax_k p_k)``: ``L = beta H(y, p) - (1 - beta) max_k log p_k``
    (``beta = 0.8``, the paper's). The argmax is a constant of the logits (piecewise), so the target
    gets no gradient whether it is detached or not; a tie takes the first class."""

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its target mixes the one-hot label with the one predicted class, onehot(argmax p); a tag "
            "set may hold several tags, and its sigmoids predict none without a threshold"
        )
    }

    def __init__(self, in_features: int, num_classes: int, *, beta: float = 0.8, **options: Any) -> None:
        super().__init__(in_features, num_classes, beta=beta, **options)

    def bootstrap_term(self, log_p: Tensor) -> Tensor:
        return -log_p.max(dim=-1).values
