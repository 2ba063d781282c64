"""Label smoothing: cross-entropy against a gold label mixed with the uniform distribution."""

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


@register("label_smoothing")
class LabelSmoothing(Stackable, Chunked, TargetMethod):
    """Cross-entropy against ``(1 - epsilon) onehot(y) + epsilon / m`` on every class::

        L = (1 - epsilon) H(y, softmax(z)) + epsilon H(u, softmax(z)),   u = 1/m everywhere

    Szegedy et al. (2016), "Rethinking the Inception Architecture", Section 7. The smoothing
    mass is spread over all ``m`` classes, gold included (PyTorch's convention), so the loss
    equals ``F.cross_entropy(z, y, label_smoothing=epsilon)``.

    Large label sets: ``chunk_size`` as for ``onehot``; the gradient in the logits is
    ``p - (1 - epsilon) onehot(y) - epsilon / m``.
    """

    # epsilon, the smoothing mass (constructor: [0, 1]): 0 is onehot, 0.1 (Szegedy et al.'s) inside;
    # above 0.3 the gold class keeps under 0.7 of the target, beyond what label smoothing is used with.
    search_space: ClassVar[dict[str, Space]] = {"epsilon": Space.floats(0.0, 0.3)}

    def __init__(self, in_features: int, num_classes: int, *, epsilon: float = 0.1, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        # Both parts are needed for the loss anyway, so logging them separately costs nothing.
        return {"ce": -gold(log_p, label), "uniform": -log_p.mean(dim=-1)}

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0 - self.epsilon, "uniform": self.epsilon}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[H(y, p), H(u, p)]`` and the gradient of the row's loss in the logits."""
        log_p = F.log_softmax(logits, dim=-1)
        terms = torch.cat([-log_p.gather(1, label[:, None]), -log_p.mean(-1, keepdim=True)], dim=1)
        grad = log_p.exp_().sub_(self.epsilon / self.num_classes)
        return terms, subtract_at_labels(grad, label, 1.0 - self.epsilon)
