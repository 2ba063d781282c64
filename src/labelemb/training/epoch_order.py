"""The one place a training epoch's order is made: the task's order, shaped where the method asks.

Every layout (one run, stacked seeds, torchrun) and the FLOP count take their orders here. A
method with a :attr:`~labelemb.methods.base.Method.batch_shape` (cskd's same-class pairs) gets
the task's order arranged by that shape from the training split's class labels; each example the
order draws is then ``rows_per_example`` consecutive rows, and the loop's batches are that many
times ``batch_size`` rows wide. Both are functions of (seed, epoch), so a resumed run has the order
it would have had.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..tasks import Task


def epoch_order(task: Task, method: nn.Module, split: Any, seed: int, epoch: int, batch_size: int) -> Tensor:
    """The rows of ``split`` in ``epoch`` for a run of ``method``: each consecutive
    ``batch_size * rows_per_example(method)`` slice is one batch."""
    order = task.epoch_order(split, seed, epoch, batch_size)
    shape = getattr(method, "batch_shape", None)
    if shape is None:
        return order
    labels = getattr(split, "labels", None)
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        raise ValueError(
            f"method {getattr(method, 'name', '') or type(method).__name__!r} needs batches of "
            f"{shape.builds}, built from one class label per training example; "
            f"{getattr(task, 'data_kind', 'this data')} has none"
        )
    return shape.arrange(order, labels, seed, epoch)


def rows_per_example(method: nn.Module) -> int:
    """Rows of a training batch for each example drawn (1 unless the method shapes its batches)."""
    shape = getattr(method, "batch_shape", None)
    return 1 if shape is None else shape.rows_per_example
