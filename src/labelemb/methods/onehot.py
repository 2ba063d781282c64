"""Plain cross-entropy: the baseline every other method is measured against."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import LinearOutputMethod, MethodOutput, gold
from .chunked import check_chunk_size, chunked_output, subtract_at_labels
from .registry import register


@register("onehot")
class OneHot(LinearOutputMethod):
    """Cross-entropy against the one-hot gold label: ``L = H(y, softmax(W h + b))``.

    The paper's baseline (Sun et al. 2017, Section 3) and "STD" in the LwAL paper.

    Large label sets: ``chunk_size`` rows at a time (None: about 2^23 logits per chunk) once a
    batch has more rows than that, with gradients in closed form (``p - onehot(y)``), so that the
    N x V logits never exist at once (see :mod:`labelemb.methods.chunked`).
    """

    stackable = True

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        init_std: float | None = None,
        chunk_size: int | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(in_features, num_classes, ignore_index, init_std)
        check_chunk_size(chunk_size)
        self.chunk_size = chunk_size

    def forward(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        chunked = chunked_output(self, features, target, self.chunk_size, cross_entropy_rows, {"ce": 1.0})
        if chunked is not None:
            return chunked
        rows, logits = self.check_inputs(features, target, self.scores)
        loss = rows.mean(-gold(F.log_softmax(logits, dim=-1), rows.label))
        return rows.output(loss, logits, {"ce": loss.detach()})


def cross_entropy_rows(logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's ``-log p[y]`` (as ``(n, 1)``) and its gradient in the logits, ``p - onehot(y)``."""
    log_p = F.log_softmax(logits, dim=-1)
    nll = -log_p.gather(1, label[:, None])
    return nll, subtract_at_labels(log_p.exp_(), label, 1.0)
