"""Plain cross-entropy: the baseline every other method is measured against."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from .abilities import Chunked, MultiHot, Stackable
from .base import gold
from .chunked import subtract_at_labels
from .liger import liger_linear_loss, runs_on_liger
from .multi_hot import tag_bce, tag_mean
from .registry import register
from .rows import MethodOutput, Rows
from .targets import TargetMethod


@register("onehot")
class OneHot(Stackable, Chunked, MultiHot, TargetMethod):
    """Cross-entropy against the one-hot gold label: ``L = H(y, softmax(W h + b))``.

    The paper's baseline (Sun et al. 2017, Section 3) and "STD" in the LwAL paper.

    Large label sets: ``chunk_size`` rows at a time (None: about 2^23 logits per chunk) once a
    batch has more rows than that, with gradients in closed form (``p - onehot(y)``), so that the
    N x V logits never exist at once (see :mod:`labelemb.methods.chunked`); on a GPU with the
    ``liger`` extra installed, that head is Liger-Kernel's fused linear cross-entropy
    (:mod:`labelemb.methods.liger`), so the baseline runs on the kernel users already have.

    Tag sets (multi-hot targets ``y`` in {0, 1}^K): the binary cross-entropy of each tag's sigmoid,
    summed over the tags and averaged over the rows (:meth:`tag_loss`), the multi-label baseline.
    """

    def __init__(self, in_features: int, num_classes: int, **options: Any) -> None:
        # A constructor of its own, whose signature lists chunk_size (see Method).
        super().__init__(in_features, num_classes, **options)

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        return {"ce": -gold(F.log_softmax(logits, dim=-1), label)}

    def chunked_loss(self, features: Tensor, rows: Rows, chunk_rows: int) -> MethodOutput:
        if not runs_on_liger(features.device):
            return super().chunked_loss(features, rows, chunk_rows)
        h, label = rows.counted(features)
        loss = liger_linear_loss(h, self.output.weight, self.output.bias, label, rows.count, epsilon=0.0)
        return MethodOutput(loss, None, {"ce": loss})

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``-log p[y]`` (as ``(n, 1)``) and its gradient in the logits, ``p - onehot(y)``."""
        log_p = F.log_softmax(logits, dim=-1)
        nll = -log_p.gather(1, label[:, None])
        return nll, subtract_at_labels(log_p.exp_(), label, 1.0)

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0}

    def tag_loss(self, logits: Tensor, tags: Tensor, features: Tensor) -> MethodOutput:
        """``L = mean_n sum_k -[y_nk log sigmoid(z_nk) + (1 - y_nk) log(1 - sigmoid(z_nk))]``."""
        bce = tag_mean(tag_bce(logits, tags))
        return MethodOutput(bce, logits, {"bce": bce})
