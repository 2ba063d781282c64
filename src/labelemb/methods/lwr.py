"""Learning with retrospection (Deng & Zhang 2021): each example learns from its own past outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..stacking import rows_of, write_rows
from .base import _INTEGER_DTYPES, LinearOutputMethod, MethodOutput, gold, is_distributed
from .registry import register


@register("lwr")
class LearningWithRetrospection(LinearOutputMethod):
    """Learning with retrospection (LWR), Deng & Zhang (2021), AAAI; as in DESIGN.md and their code.

    Each training example ``i`` keeps a soft label ``s_i``, its own ``softmax(z_i / tau)`` recorded
    in the last epoch of the previous block of ``k`` epochs. With ``e`` the 0-based epoch::

        L = (1 - w) H(y, softmax(z)) + w tau^2 KL(s_i || softmax(z / tau)),
        w = (1 - gamma) c / epochs,   c = k floor(e / k)

    so the first ``k`` epochs (``c = 0``) are plain cross-entropy. During training the head writes
    ``softmax(z / tau)`` of every example into a pending buffer at its ``index`` (its position in
    the training set); :meth:`on_epoch_end` of every ``k``-th epoch makes those recordings the
    soft labels. An example not seen in that epoch keeps its previous soft label (none at first:
    a zero row, whose KL term is 0). Here ``c`` is always ``k`` times the number of soft-label
    updates so far; the authors' script counts epochs from 1, so its ``c`` steps up one epoch
    before the matching update. In evaluation without ``index`` the loss is plain cross-entropy.

    The trainer must pass ``num_examples`` (training-set size), ``epochs`` (total epochs) and,
    since :attr:`needs_index` is True, ``index=`` on every training step. All state (soft labels,
    pending recordings, the epoch counter) lives in buffers and changes only in training mode.
    """

    needs_index = True
    stackable = True

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
        init_std: float | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(in_features, num_classes, ignore_index, init_std)
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
        self.num_examples = num_examples
        self.epochs = epochs
        self.k = k
        self.tau = tau
        self.gamma = gamma
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
        """The current weight ``w = (1 - gamma) k floor(epoch / k) / epochs`` (a 0-d tensor)."""
        c = torch.div(self.epoch, self.k, rounding_mode="floor") * self.k
        return (1.0 - self.gamma) * c.to(self.soft_targets.dtype) / self.epochs

    def forward(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        rows = self.check_inputs(features, target)
        logits = self.scores(features)
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
            return MethodOutput(loss=ce, logits=logits, terms={"ce": ce.detach()})
        index = self._check_index(index, target)
        log_q = F.log_softmax(logits / self.tau, dim=-1)
        stored = rows_of(self.soft_targets, index).to(log_q.dtype)
        # kl_div handles zero targets (rows never recorded contribute exactly 0).
        kl = self.tau**2 * rows.mean(F.kl_div(log_q, stored, reduction="none").sum(-1))
        w = self.retrospection_weight().to(log_q.dtype)
        loss = (1.0 - w) * ce + w * kl
        if self.training:
            self._record(log_q.detach().exp(), index, rows.label, rows.weight)
        return MethodOutput(loss=loss, logits=logits, terms={"ce": ce.detach(), "kl": kl.detach()})

    def _check_index(self, index: Tensor, target: Tensor) -> Tensor:
        if index.shape != target.shape:
            raise ValueError(
                f"index must have shape {tuple(target.shape)} to match the target, got {tuple(index.shape)}"
            )
        if index.dtype not in _INTEGER_DTYPES:
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
