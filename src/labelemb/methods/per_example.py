"""Per-example state across epochs: one row per training example, recorded in one epoch, read in later ones.

The door for a method that remembers something about each training example (lwr's soft labels,
pskd's previous predictions). A method mixes :class:`PerExampleState` into its class, calls
:meth:`~PerExampleState.init_per_example` in its constructor and writes
:meth:`~PerExampleState.per_example_loss` (the mixin's ``compute_loss`` opens it: the
log-softmax, the cross-entropy and the checked ``index``; a batch without ``index`` in evaluation
gets the plain cross-entropy). In training:

- :meth:`~PerExampleState.examples_of` checks ``index`` (each example's position in the training
  set: the trainer passes it, since ``needs_index`` is True; None in evaluation) and
  :meth:`~PerExampleState.stored_rows` reads those examples' current rows;
- :meth:`~PerExampleState.record` writes this epoch's value of each example into a pending table;
- :meth:`~PerExampleState.take_recordings`, from the method's ``on_epoch_end``, makes the rows
  recorded in the epoch just finished the current ones (all at once, so that an epoch reads only
  what earlier epochs recorded); examples not recorded keep their row.

Everything is a registered buffer (``epoch``, ``soft_targets``, ``pending``, ``recorded_epoch``,
``example_label``), so a checkpoint holds it and a killed run resumes exactly; the stacking
helpers address rows, so stacked seeds (``(S, num_examples, width)`` tables) work unchanged; under
``torchrun`` each process records the examples it was given and :meth:`take_recordings` sums the
processes' recordings (an example two processes both saw is averaged) so that all share one table.

Storage: the two tables are ``num_examples x width`` each in ``dtype`` (float32 by default;
float16 halves them: probabilities in [0, 1] keep about 3.3 significant digits), and the epoch
stamps and labels one integer each of ``index_dtype``. Per 60,000 examples and 10 classes:
float32 tables and int64 stamps (lwr) 5.8 MB; float16 tables and int32 stamps (pskd's default)
2.9 MB; per 60,000 examples and 100 classes, 49 MB and 24.5 MB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..stacking import rows_of, write_rows
from .finite import INTEGER_DTYPES
from .processes import is_distributed
from .rows import MethodOutput, Rows, gold

#: The storage a method may choose for its per-example tables (a config names it by string).
TABLE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def per_example_bytes(num_examples: int, width: int, dtype: torch.dtype, index_dtype: torch.dtype) -> int:
    """The memory of one seed's per-example state: two tables and two integers per example."""
    table = torch.empty((), dtype=dtype).element_size()
    stamp = torch.empty((), dtype=index_dtype).element_size()
    return num_examples * (2 * width * table + 2 * stamp)


class PerExampleState:
    """Mixin for a :class:`~labelemb.methods.base.Method` that keeps one row per training example.

    See the module's notes. ``soft_targets`` holds the current rows (zeros where an example has
    none yet), ``pending`` this epoch's recordings, ``recorded_epoch`` the epoch each pending row
    was written in (-1: never), ``example_label`` each example's label (-1: never seen) and
    ``epoch`` the epochs completed.
    """

    needs_index = True
    num_examples: int
    training: bool  # nn.Module's

    def init_per_example(
        self,
        num_examples: int,
        width: int,
        *,
        dtype: torch.dtype = torch.float32,
        index_dtype: torch.dtype = torch.int64,
    ) -> None:
        """Register the buffers: called once, from the method's constructor."""
        if num_examples < 1:
            raise ValueError(f"num_examples (the training-set size) must be positive, got {num_examples}")
        self.num_examples = num_examples
        register = self.register_buffer  # type: ignore[attr-defined]
        # Epochs completed so far; weights computed from it stay on the device.
        register("epoch", torch.zeros((), dtype=torch.int64))
        register("soft_targets", torch.zeros(num_examples, width, dtype=dtype))
        register("pending", torch.zeros(num_examples, width, dtype=dtype))
        # The epoch each pending row was written in: the swap keeps only that epoch's rows, so it
        # needs no per-epoch reset and processes can tell whose recording is current.
        register("recorded_epoch", torch.full((num_examples,), -1, dtype=index_dtype))
        register("example_label", torch.full((num_examples,), -1, dtype=index_dtype))

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        """The opening every per-example method shares: the log-softmax and its cross-entropy; on
        examples with rows (``index`` given) :meth:`per_example_loss`, else the cross-entropy."""
        log_p = F.log_softmax(logits, dim=-1)
        ce = rows.mean(-gold(log_p, rows.label))
        index = self.examples_of(index, rows.label)
        if index is None:  # evaluation data has no recorded rows: its loss is the plain cross-entropy
            return MethodOutput(ce, logits, {"ce": ce})
        return self.per_example_loss(logits, log_p, ce, rows, index)

    def per_example_loss(
        self, logits: Tensor, log_p: Tensor, ce: Tensor, rows: Rows, index: Tensor
    ) -> MethodOutput:
        """The method's loss on examples at the checked positions ``index``, given the logits'
        ``log_p = log_softmax(logits)`` and its cross-entropy ``ce``; it records in training."""
        raise NotImplementedError

    def check_index(self, index: Tensor, target: Tensor) -> Tensor:
        """``index`` as int64 positions, after checking its shape, type and (on the CPU) range."""
        if index.shape != target.shape:
            raise ValueError(
                f"index must have shape {tuple(target.shape)} to match the target, got {tuple(index.shape)}"
            )
        if index.dtype not in INTEGER_DTYPES:
            raise TypeError(f"index must hold integer dataset positions, got dtype {index.dtype}")
        index = index.long()
        # On an accelerator this check would cost a host sync every step; there the indexing
        # fails instead. On the CPU it gives a readable message, unless the trainer vouches for
        # its batches (Method.check_batches): then no step reads a value on the host anywhere.
        if index.device.type == "cpu" and index.numel() and getattr(self, "check_batches", True):
            low, high = (int(v) for v in torch.aminmax(index))
            if low < 0 or high >= self.num_examples:
                raise IndexError(
                    f"index values must lie in [0, num_examples={self.num_examples}), got "
                    f"[{low}, {high}]; pass each example's position in the training set and build "
                    "the method with the training-set size"
                )
        return index

    def examples_of(self, index: Tensor | None, target: Tensor) -> Tensor | None:
        """The checked positions ``index`` (:meth:`check_index`), or None for a batch without them
        in evaluation (data that is not the training set has no rows); training needs them."""
        if index is not None:
            return self.check_index(index, target)
        if self.training:
            raise ValueError(
                f"{type(self).__name__} needs index= in training: each example's position in the "
                f"training set (0 <= index < num_examples={self.num_examples}), so that it can record "
                "and look up the example's own row. The trainer passes it when method.needs_index is True."
            )
        return None

    def stored_rows(self, index: Tensor, dtype: torch.dtype) -> Tensor:
        """The current rows of the examples at ``index`` (``(..., N, width)``), as ``dtype``."""
        return rows_of(self.soft_targets, index).to(dtype)

    @torch.no_grad()
    def record(self, values: Tensor, index: Tensor, label: Tensor, weight: Tensor | None) -> None:
        """Write ``values`` (``(..., N, width)``) into the pending rows at ``index``, stamped with
        the current epoch; rows whose ``weight`` is 0 (ignored, not finite) keep what they had."""
        values = values.to(self.pending.dtype)
        stamp = self.epoch.unsqueeze(-1).expand(index.shape).to(self.recorded_epoch.dtype)
        label = label.to(self.example_label.dtype)
        if weight is not None:
            keep = weight > 0
            values = torch.where(keep.unsqueeze(-1), values, rows_of(self.pending, index))
            stamp = torch.where(keep, stamp, self.recorded_epoch.gather(-1, index))
            label = torch.where(keep, label, self.example_label.gather(-1, index))
        write_rows(self.pending, index, values)
        write_rows(self.recorded_epoch, index, stamp.contiguous())
        write_rows(self.example_label, index, label)

    @torch.no_grad()
    def take_recordings(self, finished: int) -> None:
        """Make the rows recorded in epoch ``finished`` the current ones (summed over processes)."""
        fresh = (self.recorded_epoch == finished).unsqueeze(-1)
        # Sums in at least float32 whatever the storage; float32 tables (lwr) compute as they always did.
        work = torch.promote_types(self.pending.dtype, torch.float32)
        total = torch.cat([self.pending.to(work) * fresh, fresh.to(work)], dim=-1)
        if is_distributed():
            # Each process recorded the examples it was given; sum them (an example that two
            # processes both saw, e.g. a padded duplicate, is averaged) so all share one table.
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
            torch.distributed.all_reduce(self.example_label, op=torch.distributed.ReduceOp.MAX)
        values, count = total[..., :-1], total[..., -1:]
        current = self.soft_targets.to(work)
        self.soft_targets.copy_(torch.where(count > 0, values / count.clamp(min=1), current))

    def finished_epoch(self) -> int:
        """Count an epoch as completed; return the one that just finished (0-based).

        Stacked seeds count their epochs together: the first seed's count is every seed's.
        """
        finished = int(self.epoch.reshape(-1)[0])
        self.epoch += 1
        return finished

    @torch.no_grad()
    def class_means(self, num_classes: int) -> Tensor:
        """Per-class mean of the current rows (``num_classes x width``); one-hot rows for classes
        with none yet (float32 at least)."""
        m = num_classes
        work = torch.promote_types(self.soft_targets.dtype, torch.float32)
        stored = self.soft_targets.to(work)
        has = (self.example_label >= 0) & (stored.sum(-1) > 0)
        label = self.example_label.clamp(min=0).long()
        sums = torch.zeros(m, stored.shape[-1], dtype=work, device=stored.device)
        sums.index_add_(0, label, stored * has[:, None])
        counts = torch.zeros(m, dtype=work, device=stored.device).index_add_(0, label, has.to(work))
        eye = torch.eye(m, stored.shape[-1], dtype=work, device=stored.device)
        return torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], eye)
