"""Logit normalisation (LogitNorm): cross-entropy on the logits divided by their norm and a temperature."""

from __future__ import annotations

import math
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

#: Added to the logits' norm before dividing, as in the authors' code: a row of zero logits stays finite.
NORM_EPS = 1e-7


@register("logitnorm")
class LogitNorm(Stackable, Chunked, TargetMethod):
    """Cross-entropy on the logits scaled to the length ``1 / tau``::

        s = z / (tau (||z||_2 + eps)),   L = H(y, softmax(s)),   eps = 1e-7

    Wei et al. (ICML 2022), "Mitigating Neural Network Overconfidence with Logit Normalization",
    the LogitNorm loss (with the ``eps`` of their code, ``LogitNormLoss``). Only the
    direction of ``z`` is trained; its norm, which cross-entropy keeps growing, is left alone. The
    default ``tau = 0.04`` is the paper's CIFAR-10 setting (their README's example command uses 0.01).

    Prediction: the raw logits ``z``, as at test time in the paper (the normalisation is a training
    loss only). The argmax is the same either way; the confidences are not: ``softmax(z)`` is what a
    run's calibration figures and its temperature scaling read. ``logit_norm`` (the mean ``||z||``)
    is logged beside the loss (weight 0 in it).

    Large label sets: ``chunk_size`` as for ``onehot``; with ``g = softmax(s) - onehot(y)``, ``n = ||z||``
    the gradient in the logits is ``(g - z (z . g) / (n (n + eps))) / (tau (n + eps))``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "it normalises the logit vector of a softmax cross-entropy to one length to bound its "
            "confidence; its paper defines no form for a tag set's independent sigmoids"
        )
    }

    # tau, the temperature (constructor: > 0): the normalised logits have length 1 / tau, so the gold
    # logit can stand at most sqrt(m / (m - 1)) / tau above all the others: at 0.2 ten classes reach p_y
    # of 0.96 at best, and above it the loss cannot fit its own labels; at 0.002 the length is 500 and
    # the loss is cross-entropy on unit directions at a huge scale. 0.04 (the paper's CIFAR-10) and the
    # README's 0.01 inside. Log: it acts as a scale.
    search_space: ClassVar[dict[str, Space]] = {"tau": Space.floats(0.002, 0.2, log=True)}

    def __init__(self, in_features: int, num_classes: int, *, tau: float = 0.04, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(tau) and tau > 0.0):
            raise ValueError(f"tau must be a finite number > 0 (the logits are divided by it), got {tau}")
        self.tau = tau

    def normalised(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """``z / (tau (||z|| + eps))`` and ``||z||`` (each row's, keeping its dimension)."""
        norm = torch.linalg.vector_norm(logits, dim=-1, keepdim=True)
        return logits / ((norm + NORM_EPS) * self.tau), norm

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        scaled, norm = self.normalised(logits)
        return {
            "normalised_ce": -gold(F.log_softmax(scaled, dim=-1), label),
            "logit_norm": norm.detach().squeeze(-1),
        }

    def row_terms(self) -> dict[str, float]:
        return {"normalised_ce": 1.0, "logit_norm": 0.0}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[H(y, softmax(s)), ||z||]`` and the loss's gradient in the raw logits ``z``."""
        scaled, norm = self.normalised(logits)
        log_q = F.log_softmax(scaled, dim=-1)
        terms = torch.cat([-log_q.gather(1, label[:, None]), norm], dim=1)
        g = subtract_at_labels(log_q.exp_(), label, 1.0)  # dL/ds
        # ds/dz = (I - z z^T / (n (n + eps))) / (tau (n + eps)); a zero row (n = 0) has z = 0: no projection.
        along = (logits * g).sum(dim=-1, keepdim=True) / (norm * (norm + NORM_EPS)).clamp(min=1e-30)
        grad = g.sub_(logits * along).div_((norm + NORM_EPS) * self.tau)
        return terms, grad
