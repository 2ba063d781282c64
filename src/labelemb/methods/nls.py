"""Negative label smoothing (Wei et al. 2022): label smoothing with a negative rate, for noisy labels."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import EpochState, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .registry import register


@register("nls")
class NegativeLabelSmoothing(Stackable, EpochState, LinearOutputMethod):
    """Generalized label smoothing, its rate allowed below 0::

        t = (1 - r) onehot(y) + r / m                         (r = smooth_rate = -0.2)
        L = H(t, p) = (1 - r) H(y, p) + r H(u, p),    u = 1/m everywhere,  p = softmax(z)

    Wei et al. (ICML 2022), "To Smooth or Not? When Label Smoothing Meets Noisy Labels": Eq. 1 (label
    smoothing) with the smooth rate ``r`` allowed negative (generalized label smoothing, GLS;
    ``r < 0`` is negative label smoothing, which the paper finds better than positive smoothing when
    the label noise rate is high). Written as the authors' ``loss_gls``: ``(1 - r) nll + r
    mean_k(-log p_k)``, averaged over the rows that count. ``r = 0`` is the cross-entropy and
    ``0 < r <= 1`` label smoothing (PyTorch's convention, as ``label_smoothing``).

    With ``r < 0`` the target has a weight above 1 on the label and ``r / m < 0`` elsewhere, so the
    loss has no minimum: it keeps falling as the other classes' probabilities go to 0, and the
    logits grow without bound while it trains. For high noise rates the authors' README runs it as
    a second stage: cross-entropy first, then NLS from that model at a learning rate of 1e-6 (their
    ``main_warmup.py`` then ``main_GLS_load.py``). ``warmup_epochs`` gives the first stage within
    one run: the first ``warmup_epochs`` epochs train on the cross-entropy (``r = 0``), the rest on
    ``r`` (default 0: NLS throughout, as their ``main_GLS_direct_train.py``); a warm-up as long as
    the run trains the cross-entropy alone. The epochs done are a buffer (checkpointed, stacked per
    seed), counted by :meth:`on_epoch_end`. The learning rate of the second stage is the trainer's
    schedule's, not the method's.

    The default rate is ``-0.2``, the mildest negative one of the paper's candidates (0.8 to -8.0,
    chosen per setting); the authors' scripts default to ``0.1`` (positive smoothing) and name no
    negative default. ``ce`` and ``uniform`` (``H(u, p)``) are logged.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its target moves mass from the one gold class to the uniform distribution, at a rate "
            "that may be negative; a tag set has no one gold class (label_smoothing's tag_smoothing "
            "smooths tag sets)"
        )
    }

    # smooth_rate, r (constructor: <= 1): 0 is cross-entropy, -0.2 (our default) inside. The paper's
    # candidates reach -8, but with a second stage at lr 1e-6; at the trainer's learning rate the
    # push of |r| / m away from every other class never stops (the loss has no minimum), so the range
    # ends at -1, twice the label's weight. Positive rates are label_smoothing's.
    search_space: ClassVar[dict[str, Space]] = {"smooth_rate": Space.floats(-1.0, 0.0)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        smooth_rate: float = -0.2,
        warmup_epochs: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(smooth_rate) and smooth_rate <= 1.0):
            raise ValueError(
                f"smooth_rate must be finite and <= 1 (negative: NLS; 0: cross-entropy), got {smooth_rate}"
            )
        if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
            raise ValueError(
                f"warmup_epochs (cross-entropy epochs before NLS) must be whole and >= 0, got {warmup_epochs}"
            )
        self.smooth_rate = smooth_rate
        self.warmup_epochs = int(warmup_epochs)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))

    def rate(self) -> Tensor:
        """This epoch's ``r``: 0 in the warm-up, ``smooth_rate`` after it (a 0-d tensor, or one a seed)."""
        return (self.epoch >= self.warmup_epochs).to(torch.float64) * self.smooth_rate

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        ce = rows.mean(-gold(log_p, rows.label))
        uniform = rows.mean(-log_p.mean(dim=-1))
        rate = self.rate().to(logits.dtype)
        return MethodOutput((1.0 - rate) * ce + rate * uniform, logits, {"ce": ce, "uniform": uniform})

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch: the warm-up ends after ``warmup_epochs`` of them."""
        self.epoch += 1
