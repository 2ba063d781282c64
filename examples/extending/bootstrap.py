"""Extending labelemb, example 2: a method.

Soft bootstrapping (Reed et al. 2015, "Training Deep Neural Networks on Noisy Labels with
Bootstrapping", Section 3): the target mixes the gold label with the model's own prediction,
which the loss does not differentiate through::

    L = H(beta onehot(y) + (1 - beta) sg(p), p)
      = beta H(y, p) + (1 - beta) H(sg(p), p),      p = softmax(W h + b)

The class writes its per-row terms only (``TargetMethod``): the template takes their mean over the
rows that count (``ignore_index``, non-finite rows left out) and their sum weighted by ``row_terms``,
and ``Method.forward`` checks the batch, runs the head and builds the step's output.
Config: ``method: {name: bootstrap, beta: 0.8}``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from labelemb import methods
from labelemb.methods.abilities import Stackable
from labelemb.methods.base import gold
from labelemb.methods.targets import TargetMethod


@methods.register("bootstrap")
class SoftBootstrap(Stackable, TargetMethod):
    """``L = beta H(y, p) + (1 - beta) H(sg(p), p)``; Reed et al. (2015) use beta = 0.95.

    Stackable: written with operations that broadcast over a leading seed dimension (log_softmax,
    gold), and tested so: the batched trainer may stack its seeds."""

    def __init__(self, in_features: int, num_classes: int, *, beta: float = 0.95, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        self.beta = beta

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        return {
            "ce": -gold(log_p, label),  # H(y, p), each row's
            "bootstrap": -(log_p.detach().exp() * log_p).sum(-1),  # H(sg(p), p)
        }

    def row_terms(self) -> dict[str, float]:
        return {"ce": self.beta, "bootstrap": 1.0 - self.beta}
