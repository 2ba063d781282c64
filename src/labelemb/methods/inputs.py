"""A batch's check before a method's loss: its shapes and labels, and which of its rows count.

:func:`check_batch` is :meth:`labelemb.methods.base.Method.check_inputs`: it validates the batch,
runs the method's head and says which rows count (:class:`~labelemb.methods.rows.Rows`). The common
batch (every label in range, every value finite) is told in one reduction per tensor and one host
read and needs no mask; the others get one, and the head runs again on their safe features. Under
torchrun the count of rows is every process's share (:func:`~labelemb.methods.processes.per_process_share`).

Rows that count: a row counts when its target is not ``ignore_index`` and its features and its
logits (the method's head outputs) are all finite. Rows with non-finite features or logits (NaN,
+-inf) are left out like ignored rows: they add nothing to any state the method keeps (its
buffers: OLS's sums and counts, LWR's recorded soft labels, LwAL's label vectors) and no gradient
to the method's parameters (label_embedding's ``E``, full or compressed, among them), so one bad
batch cannot make that state non-finite. The loss is not hidden: when such a row has a target
that counts, the returned loss is NaN (per seed, when stacked) and the row's features get a NaN
gradient (:meth:`~labelemb.methods.rows.Rows.output`), so the training loop, or an AMP
``GradScaler``, sees the bad step and can skip it; those rows' returned logits are NaN, and the
logged terms are over the rows that count. A batch with no rows (``N = 0``) gives a zero loss
connected to the graph, zero gradients and ``(0, num_classes)`` logits, and changes no state
(step counters included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from .finite import INTEGER_DTYPES, clean_batch, finite_rows, poison, tensors_of
from .processes import is_distributed, per_process_share
from .rows import Rows


class LabelRangeError(ValueError):
    """A target label lies outside ``[0, num_classes)`` and is not ``ignore_index``."""


def check_batch(
    method: Any, features: Tensor, target: Tensor, head: Callable[[Tensor], Any] | None = None
) -> tuple[Rows, Any]:
    """``(rows, head(features))`` for ``method``'s batch (``None`` for no ``head``): see
    :meth:`~labelemb.methods.base.Method.check_inputs`."""
    check_shapes(method, features, target)
    target = target.long()
    outputs = None if head is None else head(features)
    checked = (features, *tensors_of(outputs))
    rows = target.shape[-1]
    # One reduction per tensor and one host read tell the common case apart (an empty batch
    # has no labels to range over: it takes the general way, where it counts no row). An
    # ignore_index that is itself a class (0) cannot be told from a label by its range: such a
    # batch always takes the general way, which leaves its ignored rows out.
    ignore_is_a_class = 0 <= method.ignore_index < method.num_classes
    trusted = not method.check_batches
    if rows and (trusted or (not ignore_is_a_class and clean_batch(target, method.num_classes, checked))):
        count = per_process_share(features.new_tensor(rows)) if is_distributed() else float(rows)
        return Rows(label=target, weight=None, count=count), outputs
    counted = rows_that_count(method, features, target, checked)
    if head is not None:
        # Again, on features whose rows that are not finite (in the features or, from an
        # overflow, in the outputs) are zeros: no gradient then passes through a non-finite value.
        outputs = head(counted.safe(features))
    return counted, outputs


def check_shapes(method: Any, features: Tensor, target: Tensor) -> None:
    """A readable error for features or targets of the wrong shape, or targets that are not classes.

    A method whose tensors are stacked over seeds (``stacked_seeds``, see
    :func:`labelemb.stacking.stack_modules`) takes ``(S, N, d)`` features and ``(S, N)`` targets.
    """
    check_features(method, features)
    if target.shape != features.shape[:-1]:
        raise ValueError(
            f"target must have shape {tuple(features.shape[:-1])} to match the features, "
            f"got {tuple(target.shape)}"
        )
    if target.dtype not in INTEGER_DTYPES:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")


def check_features(method: Any, features: Tensor) -> None:
    """A readable error for features of the wrong shape: ``(N, in_features)``, or ``(S, N,
    in_features)`` for a method stacked over ``S`` seeds."""
    seeds = getattr(method, "stacked_seeds", None)
    shape = "(N, {d})" if seeds is None else f"({seeds}, N, {{d}})"
    if features.dim() != (2 if seeds is None else 3) or features.shape[-1] != method.in_features:
        raise ValueError(
            f"{type(method).__name__} expects features of shape {shape.format(d=method.in_features)}, "
            f"got {tuple(features.shape)}; flatten sequences to (N, d) first"
        )


def rows_that_count(method: Any, features: Tensor, target: Tensor, checked: tuple[Tensor, ...]) -> Rows:
    """The general way: the rows whose target is not ``ignore_index`` and whose ``checked`` tensors
    (the features, the head's outputs) are finite, as a mask; a :class:`LabelRangeError` for a
    label out of range, which would otherwise surface as a device-side assert on CUDA or an opaque
    IndexError from deep inside torch."""
    valid = target != method.ignore_index
    out_of_range = valid & ((target < 0) | (target >= method.num_classes))
    if bool(out_of_range.any()):
        bad = target[out_of_range][:5].tolist()
        raise LabelRangeError(
            f"labels {bad} are outside [0, {method.num_classes}); each target must be a class "
            f"index below num_classes={method.num_classes} or ignore_index={method.ignore_index}. "
            "Check the dataset's labels or the num_classes you built the method with."
        )
    finite = finite_rows(*checked)
    counted = valid & finite
    weight = counted.to(features.dtype)
    count = per_process_share(weight.sum(-1))
    return Rows(
        label=target.masked_fill(~valid, 0),
        weight=weight,
        count=count.clamp(min=1e-8),
        finite=finite,
        poison=poison(features, valid & ~finite),
    )
