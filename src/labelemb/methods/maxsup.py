"""Max suppression (MaxSup): cross-entropy plus a penalty on the top-1 logit's lead over the mean logit."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Chunked, EpochState, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .chunked import subtract_at_labels
from .registry import register


@register("maxsup")
class MaxSuppression(Stackable, Chunked, EpochState, LinearOutputMethod):
    """Cross-entropy plus ``alpha_e`` times the largest logit's lead over the mean logit::

        L       = H(y, softmax(z)) + alpha_e (max_k z_k - (1/m) sum_k z_k)
        alpha_e = alpha + (alpha_end - alpha) min(e, E - 1) / max(E - 1, 1)

    Zhou et al. (NeurIPS 2025), "MaxSup: Overcoming Representation Collapse in Label Smoothing",
    the Max Suppression loss (their Algorithm 1): label smoothing's loss is exactly
    ``H(y, p) + epsilon (z_y - mean_k z_k)``, a penalty on the gold logit that holds the top logit
    down on a right row but, on a wrong one, lifts the wrong top class against the gold one; MaxSup
    penalises the top-1 logit instead, whatever the label (on a right row the two are the same).
    Nothing is detached: the gradient in the logits is ``p - onehot(y) + alpha_e (onehot(argmax z)
    - 1/m)``. As in their ResNet, DeiT, long-tail and OOD training code (``train.py``, ``engine.py``,
    ``MaxSupLoss``, ``model.py``; their FFCV ``MaxSuppression`` divides by ``E``, not ``E - 1``),
    the weight grows linearly over the run, from ``alpha = 0.1`` in the first epoch (``e = 0``) to
    ``alpha_end = 0.2`` in the last (``e = E - 1``, ``E = epochs``, which the trainer passes);
    ``alpha_end = alpha`` keeps it fixed. Past ``E`` epochs (a continued run) it stays at
    ``alpha_end``. The epochs done are a buffer, counted by :meth:`on_epoch_end`. Both terms are
    averaged over the rows that count.

    Large label sets: ``chunk_size`` as for ``onehot``, with the gradient above in closed form.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "it penalises the top-1 logit of a softmax over mutually exclusive classes against the "
            "mean logit; a tag set has several tags that should all score high"
        )
    }

    # alpha and alpha_end, the penalty's weight in the first and in the last epoch (constructor: >= 0):
    # their 0.1 and 0.2 inside, each drawn on its own (a draw may keep the weight flat or let it fall).
    # Below 0.01 the penalty does next to nothing beside the cross-entropy; at 1 a logit lead of one
    # costs as much as a gold probability of 1/e, past which the top logit is held down harder than
    # the labels lift it. Log: the weight acts as a scale.
    search_space: ClassVar[dict[str, Space]] = {
        "alpha": Space.floats(0.01, 1.0, log=True),
        "alpha_end": Space.floats(0.01, 1.0, log=True),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        epochs: int,
        alpha: float = 0.1,
        alpha_end: float = 0.2,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs (the run's, over which the weight grows) must be >= 1; got {epochs}")
        for name, value in (("alpha", alpha), ("alpha_end", alpha_end)):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0 (the penalty's weight), got {value}")
        self.epochs = int(epochs)
        self.alpha = alpha
        self.alpha_end = alpha_end
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))

    def weight(self) -> Tensor:
        """This epoch's ``alpha_e`` (a 0-d float64 tensor, or one a seed when stacked)."""
        done = self.epoch.to(torch.float64).clamp(max=self.epochs - 1)
        return self.alpha + (self.alpha_end - self.alpha) * done / max(self.epochs - 1, 1)

    @staticmethod
    def lead(logits: Tensor) -> Tensor:
        """Each row's ``max_k z_k - mean_k z_k``, differentiated through the max and the mean."""
        return logits.max(dim=-1).values - logits.mean(dim=-1)

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        ce = rows.mean(-gold(F.log_softmax(logits, dim=-1), rows.label))
        lead = rows.mean(self.lead(logits))
        loss = ce + self.weight().to(logits.dtype) * lead
        return MethodOutput(loss, logits, {"ce": ce, "max_suppression": lead})

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch: the next one's weight is a step further along the ramp."""
        self.epoch += 1

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0, "max_suppression": float(self.weight())}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[H(y, p), max z - mean z]`` and the gradient of their weighted sum in the logits."""
        largest, top = logits.max(dim=-1, keepdim=True)
        log_p = F.log_softmax(logits, dim=-1)
        terms = torch.cat([-log_p.gather(1, label[:, None]), largest - logits.mean(-1, keepdim=True)], dim=1)
        weight = self.weight().to(logits.dtype)
        grad = subtract_at_labels(log_p.exp_(), label, 1.0).sub_(weight / self.num_classes)
        return terms, grad.scatter_add_(1, top, weight.expand(top.shape).clone())
