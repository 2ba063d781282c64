"""Learning with retrospection (Deng & Zhang 2021): each example learns from its own past outputs."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search import Space
from ..stacking import rows_of, write_rows
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .finite import INTEGER_DTYPES
from .processes import is_distributed
from .registry import register


@register("lwr")
class LearningWithRetrospection(LinearOutputMethod):
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
    the loss then is NaN (see :class:`~labelemb.methods.base.Method`).
    """

    needs_index = True
    stackable = True
    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it keeps a soft label per training example (per-example state, indexed by the "
        "example's position); a token row has no such index, and N_tokens x V soft labels would not fit"
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
        if num_examples < 1:
            raise ValueError(f"num_examples (the training-set size) must be positive, got {num_examples}")
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
        self.num_examples = num_examples
        self.epochs = epochs
        self.k = k
        self.tau = tau
        self.gamma = gamma
        self.weight_horizon = weight_horizon
        # Epochs completed so far; the weight w is computed from it on the device, never on the host.
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self.register_buffer("soft_targets", torch.zeros(num_examples, num_classes))
        self.register_buffer("pending", torch.zeros(num_examples, num_classes))
        # The epoch each pending row was written in: on_epoch_end keeps only that epoch's rows, so
        # the swap needs no per-epoch reset and processes can tell whose recording is current.
        self.register_buffer("recorded_epoch", torch.full((num_examples,), -1, dtype=torch.int64))
        # Each example's label (-1: never seen), for the per-class label representation.
        self.register_buffer("example_label", torch.full((num_examples,), -1, dtype=torch.int64))

    def retrospection_weight(self) -> Tensor:
        """The current weight ``w = (1 - gamma) k floor(epoch / k) / H`` (a 0-d tensor).

        ``H`` is ``weight_horizon``, or ``epochs`` when that is None.
        """
        c = torch.div(self.epoch, self.k, rounding_mode="floor") * self.k
        horizon = self.epochs if self.weight_horizon is None else self.weight_horizon
        return (1.0 - self.gamma) * c.to(self.soft_targets.dtype) / horizon

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        ce = rows.mean(-gold(log_p, rows.label))
        if index is None:
            if self.training:
                raise ValueError(
                    "LearningWithRetrospection needs index= in training: each example's position in "
                    f"the training set (0 <= index < num_examples={self.num_examples}), so that it can "
                    "record and look up the example's soft label. The trainer passes it when "
                    "method.needs_index is True."
                )
            # Evaluation data has no recorded soft labels: its loss is the plain cross-entropy.
            return MethodOutput(ce, logits, {"ce": ce})
        index = self._check_index(index, rows.label)
        log_q = F.log_softmax(logits / self.tau, dim=-1)
        stored = rows_of(self.soft_targets, index).to(log_q.dtype)
        # kl_div handles zero targets (rows never recorded contribute exactly 0).
        kl = self.tau**2 * rows.mean(F.kl_div(log_q, stored, reduction="none").sum(-1))
        w = self.retrospection_weight().to(log_q.dtype)
        loss = (1.0 - w) * ce + w * kl
        if self.training:
            self._record(log_q.detach().exp(), index, rows.label, rows.weight)
        return MethodOutput(loss, logits, {"ce": ce, "kl": kl})

    def _check_index(self, index: Tensor, target: Tensor) -> Tensor:
        if index.shape != target.shape:
            raise ValueError(
                f"index must have shape {tuple(target.shape)} to match the target, got {tuple(index.shape)}"
            )
        if index.dtype not in INTEGER_DTYPES:
            raise TypeError(f"index must hold integer dataset positions, got dtype {index.dtype}")
        index = index.long()
        # On an accelerator this check would cost a host sync every step; there the indexing
        # below fails instead. On the CPU it is free and gives a readable message.
        if index.device.type == "cpu" and index.numel():
            low, high = (int(v) for v in torch.aminmax(index))
            if low < 0 or high >= self.num_examples:
                raise IndexError(
                    f"index values must lie in [0, num_examples={self.num_examples}), got "
                    f"[{low}, {high}]; pass each example's position in the training set and build "
                    "the method with the training-set size"
                )
        return index

    @torch.no_grad()
    def _record(self, soft: Tensor, index: Tensor, label: Tensor, weight: Tensor | None) -> None:
        soft = soft.to(self.pending.dtype)
        stamp = self.epoch.unsqueeze(-1).expand(index.shape)
        if weight is not None:  # ignored rows rewrite what is already there
            keep = weight > 0
            soft = torch.where(keep.unsqueeze(-1), soft, rows_of(self.pending, index))
            stamp = torch.where(keep, stamp, self.recorded_epoch.gather(-1, index))
            label = torch.where(keep, label, self.example_label.gather(-1, index))
        write_rows(self.pending, index, soft)
        write_rows(self.recorded_epoch, index, stamp.contiguous())
        write_rows(self.example_label, index, label)

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch; after every ``k``-th, this epoch's recordings become the soft labels."""
        finished = int(self.epoch.reshape(-1)[0])  # stacked seeds count their epochs together
        self.epoch += 1
        if (finished + 1) % self.k != 0:
            return
        fresh = (self.recorded_epoch == finished).unsqueeze(-1)
        total = torch.cat([self.pending * fresh, fresh.to(self.pending.dtype)], dim=-1)
        if is_distributed():
            # Each process recorded the examples it was given; sum them (an example that two
            # processes both saw, e.g. a padded duplicate, is averaged) so all share one table.
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
            torch.distributed.all_reduce(self.example_label, op=torch.distributed.ReduceOp.MAX)
        soft, count = total[..., :-1], total[..., -1:]
        self.soft_targets.copy_(torch.where(count > 0, soft / count.clamp(min=1), self.soft_targets))

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """Per-class mean of the stored soft labels (m x m); one-hot rows for classes with none yet."""
        m = self.num_classes
        has = (self.example_label >= 0) & (self.soft_targets.sum(-1) > 0)
        label = self.example_label.clamp(min=0)
        sums = torch.zeros(m, m, dtype=self.soft_targets.dtype, device=self.soft_targets.device)
        sums.index_add_(0, label, self.soft_targets * has[:, None])
        counts = torch.zeros(m, dtype=sums.dtype, device=sums.device).index_add_(0, label, has.to(sums.dtype))
        eye = torch.eye(m, dtype=sums.dtype, device=sums.device)
        return torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], eye)
