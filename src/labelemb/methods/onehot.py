"""Plain cross-entropy: the baseline every other method is measured against."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import LinearOutputMethod, MethodOutput, gold
from .registry import register


@register("onehot")
class OneHot(LinearOutputMethod):
    """Cross-entropy against the one-hot gold label: ``L = H(y, softmax(W h + b))``.

    The paper's baseline (Sun et al. 2017, Section 3) and "STD" in the LwAL paper.
    """

    stackable = True

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        init_std: float | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(in_features, num_classes, ignore_index, init_std)

    def forward(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        rows, logits = self.check_inputs(features, target, self.scores)
        loss = rows.mean(-gold(F.log_softmax(logits, dim=-1), rows.label))
        return rows.output(loss, logits, {"ce": loss.detach()})
