"""Confidence penalty: cross-entropy minus a bonus for high-entropy predictions."""

from __future__ import annotations

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


@register("confidence_penalty")
class ConfidencePenalty(Stackable, Chunked, TargetMethod):
    """Cross-entropy minus ``beta`` times the entropy of the prediction::

        L = H(y, softmax(z)) - beta * H(softmax(z)),   H(p) = -sum_i p_i log p_i

    Pereyra et al. (2017), "Regularizing Neural Networks by Penalizing Confident Output
    Distributions", Section 3 ("MaxEntReg" in the LwAL paper). Both terms are averaged over the
    rows that count. The entropy is differentiated too: that is the penalty's whole effect.

    Large label sets: ``chunk_size`` as for ``onehot``; the gradient in the logits is
    ``p - onehot(y) + beta p (log p + H(p))``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "it penalises the entropy of one softmax distribution over mutually exclusive classes; a "
            "tag set's sigmoids are K independent binary predictions, with no such distribution"
        )
    }

    # beta, the entropy bonus's weight (constructor: >= 0): 0.1 (our default) inside. Log: it matters
    # by orders of magnitude; from about 2 the bonus (up to beta log m) outweighs the cross-entropy
    # and flattens the predictions, below 0.01 it does next to nothing.
    search_space: ClassVar[dict[str, Space]] = {"beta": Space.floats(0.01, 2.0, log=True)}

    def __init__(self, in_features: int, num_classes: int, *, beta: float = 0.1, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if beta < 0.0:
            raise ValueError(f"beta must be >= 0 (a negative beta rewards confidence), got {beta}")
        self.beta = beta

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        # p log p from log_softmax stays finite where p underflows to 0 (0 * finite = 0),
        # unlike torch.special.entr(p), whose gradient at p = 0 is infinite.
        return {"ce": -gold(log_p, label), "entropy": -(log_p.exp() * log_p).sum(dim=-1)}

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0, "entropy": -self.beta}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[H(y, p), H(p)]`` and the gradient of ``H(y, p) - beta H(p)`` in the logits."""
        log_p = F.log_softmax(logits, dim=-1)
        p = log_p.exp()
        entropy = -(p * log_p).sum(-1, keepdim=True)
        terms = torch.cat([-log_p.gather(1, label[:, None]), entropy], dim=1)
        grad = log_p.add_(entropy).mul_(p).mul_(self.beta).add_(p)  # p + beta p (log p + H)
        return terms, subtract_at_labels(grad, label, 1.0)
