"""Learning with retrospection (Deng & Zhang 2021): each example learns from its own past outputs."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import EpochState, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows
from .per_example import PerExampleState
from .registry import register


@register("lwr")
class LearningWithRetrospection(Stackable, EpochState, PerExampleState, LinearOutputMethod):
    """Learning with retrospection (LWR), Deng & Zhang, "Learning with Retrospection", AAAI 2021.

    Each training example ``i`` keeps a soft label ``s_i``, its own ``softmax(z_i / tau)`` recorded
    in the last epoch of the previous block of ``k`` epochs. With ``e`` the 0-based epoch::

        L = (1 - w) H(y, softmax(z)) + w tau^2 KL(s_i || softmax(z / tau)),
        w = (1 - gamma) c / H,   c = k floor(e / k),   H = weight_horizon or epochs

    so the first ``k`` epochs (``c = 0``) are plain cross-entropy. During training the head writes
    ``softmax(z / tau)`` of every example into a pending buffer at its ``index`` (its position in
    the training set); :meth:`on_epoch_end` of every ``k``-th epoch makes those recordings the
    soft labels. An example not seen in that epoch keeps its previous soft label (none at first:
    a zero row, whose KL term is 0). In evaluation without ``index`` the loss is plain cross-entropy.

    Where this differs from the authors' code (``helper/loops.py`` of their release, CIFAR-100,
    200 epochs): (1) their weight divides by a literal 240, not by the number of epochs trained
    (200), so their largest weight is ``0.9 * 200 / 240 = 0.75``, where ours, by default, reaches
    ``0.9 * 195 / 200 = 0.88`` (``k = 5``); ``weight_horizon=240`` with ``epochs=200`` gives
    theirs (``0.9 * 195 / 240 = 0.73`` at most). (2) Their script counts epochs from 1, so its
    ``c`` steps up one epoch before the matching soft-label update; here ``c`` is always ``k``
    times the number of soft-label updates so far.

    ``weight_horizon`` (default None: ``epochs``) is the number of epochs ``H`` the weight divides
    by; it must be a positive integer that keeps ``w <= 1`` up to the last epoch.

    The trainer must pass ``num_examples`` (training-set size), ``epochs`` (total epochs) and,
    since :attr:`needs_index` is True, ``index=`` on every training step. All state (soft labels,
    pending recordings, the epoch counter) lives in buffers and changes only in training mode.
    Rows with non-finite features or logits are left out of every recording (their pending soft
    label, epoch stamp and label stay as they were) and of the gradients, as ignored rows are;
    the loss then is NaN (see :class:`~labelemb.methods.base.Method`). The per-example tables are
    those of :class:`~labelemb.methods.per_example.PerExampleState`, in float32.
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it keeps a soft label per training example (per-example state, indexed by the "
        "example's position); a token row has no such index, and N_tokens x V soft labels would not fit",
        "tags": (
            "its soft labels are each example's temperature-softened softmax distribution, distilled "
            "by a KL divergence; a tag set's sigmoids are no one distribution"
        ),
    }
    # k, epochs between soft-label updates (constructor: >= 1): 5 (the authors') and the LwAL paper's
    # 2 and 3 inside; 1 updates every epoch. Past 5 a run of tens of epochs updates a handful of times
    # (and one of k epochs or fewer never does: plain cross-entropy).
    # tau, the temperature of the recorded soft labels (constructor: > 0): 5 (theirs) inside; at 1
    # they are the plain softmax, at 10 close to uniform for the usual logits. Log: it acts by ratio.
    search_space: ClassVar[dict[str, Space]] = {
        "k": Space.ints(1, 5),
        "tau": Space.floats(1.0, 10.0, log=True),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_examples: int,
        epochs: int,
        k: int = 5,
        tau: float = 5.0,
        gamma: float = 0.1,
        weight_horizon: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if epochs < 1:
            raise ValueError(f"epochs (the total number of training epochs) must be positive, got {epochs}")
        if k < 1:
            raise ValueError(f"k (epochs between soft-label updates) must be at least 1, got {k}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        if weight_horizon is not None:
            number = isinstance(weight_horizon, (int, float)) and not isinstance(weight_horizon, bool)
            if not number or not 1 <= weight_horizon < math.inf or int(weight_horizon) != weight_horizon:
                raise ValueError(
                    f"weight_horizon (the epochs the weight w divides by; None: epochs) must be a "
                    f"positive integer, got {weight_horizon!r}"
                )
            last_c = k * ((epochs - 1) // k)
            if (1.0 - gamma) * last_c > weight_horizon:
                raise ValueError(
                    f"weight_horizon={weight_horizon} would make the weight w = (1 - gamma) c / "
                    f"weight_horizon exceed 1 by the last epoch (c = {last_c}), giving the cross-entropy "
                    f"a negative weight; use at least {(1.0 - gamma) * last_c:g}, e.g. epochs={epochs}, "
                    "or 240 with 200 epochs as the authors' code"
                )
            weight_horizon = int(weight_horizon)
        self.epochs = epochs
        self.k = k
        self.tau = tau
        self.gamma = gamma
        self.weight_horizon = weight_horizon
        # soft_targets: the soft labels; pending: this block's recordings (float32, as always).
        self.init_per_example(num_examples, num_classes)

    def retrospection_weight(self) -> Tensor:
        """The current weight ``w = (1 - gamma) k floor(epoch / k) / H`` (a 0-d tensor).

        ``H`` is ``weight_horizon``, or ``epochs`` when that is None.
        """
        c = torch.div(self.epoch, self.k, rounding_mode="floor") * self.k
        horizon = self.epochs if self.weight_horizon is None else self.weight_horizon
        return (1.0 - self.gamma) * c.to(self.soft_targets.dtype) / horizon

    def per_example_loss(
        self, logits: Tensor, log_p: Tensor, ce: Tensor, rows: Rows, index: Tensor
    ) -> MethodOutput:
        log_q = F.log_softmax(logits / self.tau, dim=-1)
        stored = self.stored_rows(index, log_q.dtype)
        # kl_div handles zero targets (rows never recorded contribute exactly 0).
        kl = self.tau**2 * rows.mean(F.kl_div(log_q, stored, reduction="none").sum(-1))
        w = self.retrospection_weight().to(log_q.dtype)
        loss = (1.0 - w) * ce + w * kl
        if self.training:
            self.record(log_q.detach().exp(), index, rows.label, rows.weight)
        return MethodOutput(loss, logits, {"ce": ce, "kl": kl})

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch; after every ``k``-th, this epoch's recordings become the soft labels."""
        finished = self.finished_epoch()
        if (finished + 1) % self.k == 0:
            self.take_recordings(finished)

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """Per-class mean of the stored soft labels (m x m); one-hot rows for classes with none yet."""
        return self.class_means(self.num_classes)
