"""Extending labelemb, example 2: a method.

Soft bootstrapping (Reed et al. 2015, "Training Deep Neural Networks on Noisy Labels with
Bootstrapping", Section 3): the target mixes the gold label with the model's own prediction,
which the loss does not differentiate through::

    L = H(beta onehot(y) + (1 - beta) sg(p), p)
      = beta H(y, p) + (1 - beta) H(sg(p), p),      p = softmax(W h + b)

The class writes the loss hook only: ``Method.forward`` checks the batch, runs the head, leaves
out the rows that do not count (``ignore_index``, non-finite) and builds the step's output.
Config: ``method: {name: bootstrap, beta: 0.8}``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from labelemb import methods
from labelemb.methods.base import LinearOutputMethod, MethodOutput, Rows, gold


@methods.register("bootstrap")
class SoftBootstrap(LinearOutputMethod):
    """``L = beta H(y, p) + (1 - beta) H(sg(p), p)``; Reed et al. (2015) use beta = 0.95."""

    # Written with operations that broadcast over a leading seed dimension (log_softmax, gold,
    # Rows.mean), and tested so: the batched trainer may stack its seeds.
    stackable = True

    def __init__(self, in_features: int, num_classes: int, *, beta: float = 0.95, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        self.beta = beta

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        ce = rows.mean(-gold(log_p, rows.label))  # H(y, p) over the rows that count
        own = rows.mean(-(log_p.detach().exp() * log_p).sum(-1))  # H(sg(p), p)
        loss = self.beta * ce + (1.0 - self.beta) * own
        return MethodOutput(loss, logits, {"ce": ce, "bootstrap": own})
