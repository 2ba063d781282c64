"""Label smoothing: cross-entropy against a gold label mixed with the uniform distribution (and,
for tag sets, the binary cross-entropy against smoothed tags)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Chunked, MultiHot, Stackable
from .base import gold
from .chunked import subtract_at_labels
from .multi_hot import tag_bce, tag_mean
from .registry import register
from .rows import MethodOutput
from .targets import TargetMethod, weighted_sum

#: The two ways of smoothing a tag set (``tag_smoothing``).
TAG_SMOOTHINGS = ("uniform", "mass")


@register("label_smoothing")
class LabelSmoothing(Stackable, Chunked, MultiHot, TargetMethod):
    """Cross-entropy against ``(1 - epsilon) onehot(y) + epsilon / m`` on every class::

        L = (1 - epsilon) H(y, softmax(z)) + epsilon H(u, softmax(z)),   u = 1/m everywhere

    Szegedy et al. (2016), "Rethinking the Inception Architecture", Section 7. The smoothing
    mass is spread over all ``m`` classes, gold included (PyTorch's convention), so the loss
    equals ``F.cross_entropy(z, y, label_smoothing=epsilon)``.

    Large label sets: ``chunk_size`` as for ``onehot``; the gradient in the logits is
    ``p - (1 - epsilon) onehot(y) - epsilon / m``.

    Tag sets (multi-hot ``y`` in {0, 1}^K): each tag's binary cross-entropy against a smoothed
    target ``t``, in one of the two forms in use, chosen by ``tag_smoothing``::

        uniform:  t_k = (1 - epsilon) y_k + epsilon / K                  (every tag towards epsilon / K)
        mass:     t_k = (1 - epsilon) y_k + epsilon (sum_j y_j) / K      (the row keeps its mass sum_j y_j)

    ``uniform`` is timm's ``BinaryCrossEntropy`` smoothing; ``mass`` (as proposed for Hugging Face
    transformers' ``Trainer``, pull request 48713) spreads the smoothing over the tags in proportion
    to how many the row carries, so that the targets sum to the row's count of tags (a row without
    tags is not smoothed). ``L = (1 - epsilon) BCE(z, y) + epsilon BCE(z, c)``
    (BCE is linear in its target; ``c`` is ``1/K`` or ``(sum_j y_j) / K``), summed over the tags and
    averaged over the rows; ``bce`` and ``smoothing`` are logged. ``tag_smoothing`` means nothing
    for single-label rows.
    """

    # epsilon, the smoothing mass (constructor: [0, 1]): 0 is onehot, 0.1 (Szegedy et al.'s) inside;
    # above 0.3 the gold class keeps under 0.7 of the target, beyond what label smoothing is used with.
    search_space: ClassVar[dict[str, Space]] = {"epsilon": Space.floats(0.0, 0.3)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        epsilon: float = 0.1,
        tag_smoothing: Literal["uniform", "mass"] = "uniform",
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        if tag_smoothing not in TAG_SMOOTHINGS:
            raise ValueError(
                f"tag_smoothing must be 'uniform' (every tag towards epsilon / K) or 'mass' (the row's "
                f"count of tags kept), got {tag_smoothing!r}"
            )
        self.epsilon = epsilon
        self.tag_smoothing = tag_smoothing

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

    def smoothing_target(self, tags: Tensor, logits: Tensor) -> Tensor:
        """What the smoothing mass moves each tag towards, ``c`` in ``t = (1 - epsilon) y + epsilon c``,
        in the logits' shape: ``1 / K`` (uniform), or the row's ``(sum_j y_j) / K`` (mass)."""
        if self.tag_smoothing == "uniform":
            return torch.full_like(logits, 1.0 / self.num_classes)
        share = tags.sum(-1, keepdim=True).to(logits.dtype) / self.num_classes
        return share.expand_as(logits)

    def tag_loss(self, logits: Tensor, tags: Tensor, features: Tensor) -> MethodOutput:
        """``(1 - epsilon) BCE(z, y) + epsilon BCE(z, c)``, each summed over the tags and averaged
        over the rows: the binary cross-entropy against the smoothed tags."""
        terms = {
            "bce": tag_mean(tag_bce(logits, tags)),
            "smoothing": tag_mean(tag_bce(logits, self.smoothing_target(tags, logits))),
        }
        weights = {"bce": 1.0 - self.epsilon, "smoothing": self.epsilon}
        return MethodOutput(weighted_sum(terms, weights), logits, terms)
