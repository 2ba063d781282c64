"""Early-learning regularization (Liu et al. 2020): keep each example near its early predictions."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..search_spaces import Space
from ..stacking import write_rows
from .abilities import EpochState, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows
from .per_example import PerExampleState
from .registry import register

#: The authors' bounds on each probability before the regulariser (``clamp(1e-4, 1 - 1e-4)``).
PROBABILITY_FLOOR = 1e-4


@register("elr")
class EarlyLearningRegularization(Stackable, EpochState, PerExampleState, LinearOutputMethod):
    """ELR, Liu et al. (NeurIPS 2020), "Early-Learning Regularization Prevents Memorization of Noisy
    Labels", Section 4 (the regularised loss, and its targets by temporal ensembling).

    Each training example ``i`` keeps a target ``t_i``, a running average of its own predictions
    (zeros at the start). At every training step, for the batch's examples, with
    ``c = clamp(p_i, 1e-4, 1 - 1e-4)`` and ``p = softmax(z)``::

        t_i <- beta t_i + (1 - beta) sg(c / sum_k c_k)                 (beta = 0.7)
        L    = H(y, p) + lam * log(1 - <t_i, c>)                       (lam = 3)

    the regulariser read with the target just updated, as in the authors' ``elr_loss``. While the
    network learns from the clean labels early on, ``t_i`` holds its early (mostly right)
    predictions; the regulariser's gradient then pulls ``p_i`` towards ``t_i``, against the wrong
    labels the cross-entropy would memorise later. ``beta = 0.7``, ``lam = 3`` are the authors'
    CIFAR-10 setting (``config_cifar10.json``); CIFAR-100's is 0.9 and 7. The clamp bounds ``<t_i,
    c>`` below 1 (``log 0`` never happens) and, as ``torch.clamp`` does, passes no gradient for a
    probability outside its bounds.

    The targets are per-example state, kept in the tables of
    :class:`~labelemb.methods.per_example.PerExampleState` (``soft_targets``, float32: an exponential
    average accumulates rounding), but ELR reads and writes them at every step, not once an epoch:
    each step writes the batch's new targets into ``soft_targets`` at once (and records them, so that
    the epoch's end under ``torchrun`` merges what each process wrote; on one process that swap
    changes nothing). The recordings double the tables' memory: about 5 MB for 60,000 examples
    and 10 classes, 49 MB for 100 classes. Every table is a registered buffer: a checkpoint holds
    the targets and a resumed run continues them exactly. Rows that do not count (ignored, not
    finite) keep their target. The trainer passes ``num_examples`` and, since :attr:`needs_index`
    is True, ``index=`` on every training step; in evaluation the targets are read, never written,
    and without ``index`` the loss is the plain cross-entropy.
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it keeps a running target per training example (per-example state, indexed by the "
        "example's position); a token row has no such index, and N_tokens x V targets would not fit",
        "tags": (
            "its per-example target is a running average of the softmax distribution, and its "
            "regulariser, the log of one minus that target's inner product with p, needs that one "
            "distribution; a tag set's sigmoids are no distribution"
        ),
    }
    # beta, the targets' momentum (constructor: [0, 1)): the authors' 0.7 (CIFAR-10) and 0.9 (CIFAR-100,
    # asymmetric noise) inside; near 0 the target is this step's own prediction, and past 0.99 it moves
    # too slowly over a run of tens of epochs (one update per epoch) to leave its zero start.
    # lam, the regulariser's weight (constructor: >= 0): their 1, 3 and 7 inside. Log: it acts as a scale.
    search_space: ClassVar[dict[str, Space]] = {
        "beta": Space.floats(0.5, 0.99),
        "lam": Space.floats(0.3, 10.0, log=True),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_examples: int,
        beta: float = 0.7,
        lam: float = 3.0,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise ValueError(f"beta (the targets' momentum) must lie in [0, 1), got {beta}")
        if not (math.isfinite(lam) and lam >= 0.0):
            raise ValueError(
                f"lam (the regulariser's weight; 0: cross-entropy) must be finite and >= 0, got {lam}"
            )
        self.beta = beta
        self.lam = lam
        self.init_per_example(num_examples, num_classes, index_dtype=torch.int32)

    def per_example_loss(
        self, logits: Tensor, log_p: Tensor, ce: Tensor, rows: Rows, index: Tensor
    ) -> MethodOutput:
        clamped = log_p.exp().clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
        # The average in at least the table's float32, whatever the logits' precision (AMP's bf16).
        work = torch.promote_types(clamped.dtype, self.soft_targets.dtype)
        previous = self.stored_rows(index, work)
        with torch.no_grad():
            fresh = clamped.to(work)
            average = self.beta * previous + (1.0 - self.beta) * (fresh / fresh.sum(dim=-1, keepdim=True))
            # The regulariser reads the target as stored, as the authors' reads its table back.
            target = average.to(self.soft_targets.dtype)
        if self.training:
            self.keep_targets(target, previous, index, rows)
        agreement = (target.to(clamped.dtype) * clamped).sum(dim=-1)
        regulariser = rows.mean(torch.log1p(-agreement))
        return MethodOutput(ce + self.lam * regulariser, logits, {"ce": ce, "elr": regulariser})

    @torch.no_grad()
    def keep_targets(self, target: Tensor, previous: Tensor, index: Tensor, rows: Rows) -> None:
        """Write the batch's new targets (rows that do not count keep theirs) and record them."""
        if rows.weight is not None:
            target = torch.where(rows.weight.unsqueeze(-1) > 0, target, previous.to(target.dtype))
        write_rows(self.soft_targets, index, target)
        self.record(target, index, rows.label, rows.weight)

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch; under ``torchrun``, every process takes the targets the others wrote."""
        self.take_recordings(self.finished_epoch())

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """Per-class mean of the examples' targets (m x m); one-hot rows for classes with none yet."""
        return self.class_means(self.num_classes)
