"""Label relaxation: no loss inside a credal set around the gold label, else KL to its nearest member."""

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
from .rows import one_hot
from .targets import TargetMethod


@register("label_relaxation")
class LabelRelaxation(Stackable, Chunked, TargetMethod):
    """Zero loss once the gold class holds more than ``1 - alpha``, else the KL divergence to the
    prediction's projection onto that set (the credal set of the relaxed label)::

        L = 0                  if p_y > 1 - alpha
            KL(sg(r) || p)     otherwise,      p = softmax(z)
        r_y = 1 - alpha,   r_k = alpha p_k / sum_{j != y} p_j   (k != y)

    Lienen & Hüllermeier (AAAI 2021), "From Label Smoothing to Label Relaxation", section "Label
    Relaxation": the target is the set of distributions with at least ``1 - alpha`` on ``y``, and the
    loss is the KL divergence to its member nearest the prediction, ``r``, which is taken as a
    constant (their code builds it under ``torch.no_grad()``). The gradient in the logits is
    ``p - r`` where the loss is on, 0 elsewhere; it is the same with ``r`` differentiated, since
    ``r`` moves only along directions in which ``log r - log p`` is constant. ``alpha = 0`` is
    cross-entropy. At ``p_y = 1 - alpha`` both cases give 0, so the loss is continuous.

    Logged: ``kl`` (the loss) and ``in_set``, the share of the rows already inside the set (weight 0).
    Each row's loss is averaged over the rows that count.

    Large label sets: ``chunk_size`` as for ``onehot``, with the gradient ``p - r`` in closed form.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its target is the set of distributions with at least 1 - alpha on the one gold class; a "
            "tag set has no one gold class, and its sigmoids are no distribution"
        )
    }

    # alpha, the probability the relaxed label leaves to the other classes (constructor: [0, 1)): 0 is
    # cross-entropy, 0.1 (our default, label smoothing's epsilon) inside; above 0.4 a prediction
    # whose gold class holds 0.6 already counts as fitted, so the labels teach little on data a network
    # classifies well. Linear, as label smoothing's epsilon.
    search_space: ClassVar[dict[str, Space]] = {"alpha": Space.floats(0.0, 0.4)}

    def __init__(self, in_features: int, num_classes: int, *, alpha: float = 0.1, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(alpha) and 0.0 <= alpha < 1.0):
            raise ValueError(f"alpha must lie in [0, 1) (at 1 every prediction is in the set), got {alpha}")
        self.alpha = alpha

    def relaxed(self, log_p: Tensor, label: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each row's ``KL(r || p)`` with ``r`` constant (0 where ``p_y > 1 - alpha``), whether the row
        lies in the set, and ``r`` (``(..., N, m)``, no gradient)."""
        is_gold = one_hot(label, self.num_classes)
        log_p_y = gold(log_p, label)
        with torch.no_grad():
            # log sum_{j != y} p_j, from the log-probabilities: exact however close p_y is to 1.
            log_rest = torch.logsumexp(log_p.masked_fill(is_gold, -math.inf), dim=-1, keepdim=True)
            target = torch.where(is_gold, 1.0 - self.alpha, self.alpha * (log_p - log_rest).exp())
            inside = log_p_y.exp() > 1.0 - self.alpha
        # sum_k r_k (log r_k - log p_k), with 0 log 0 = 0 where alpha = 0.
        kl = (torch.special.xlogy(target, target) - target * log_p).sum(dim=-1)
        return torch.where(inside, 0.0, kl), inside, target

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        kl, inside, _ = self.relaxed(F.log_softmax(logits, dim=-1), label)
        return {"kl": kl, "in_set": inside.to(kl.dtype)}

    def row_terms(self) -> dict[str, float]:
        return {"kl": 1.0, "in_set": 0.0}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[KL(r || p), in set]`` and the loss's gradient in the logits: ``p - r``
        outside the set, 0 inside."""
        log_p = F.log_softmax(logits, dim=-1)
        kl, inside, target = self.relaxed(log_p, label)
        grad = log_p.exp_().sub_(target).masked_fill_(inside.unsqueeze(-1), 0.0)
        return torch.stack([kl, inside.to(kl.dtype)], dim=1), grad
