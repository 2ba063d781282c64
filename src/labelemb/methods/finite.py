"""Which rows of a batch can count: labels in range and finite values, told apart cheaply.

The common batch (every label in range, every value finite) is told in one reduction per tensor
and one host read (:func:`clean_batch`); the others get a per-row mask (:func:`finite_rows`) and
a loss that says so (:func:`poison`). See :class:`labelemb.methods.base.Method`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)
HALF_DTYPES = (torch.float16, torch.bfloat16)


def finite_rows(*tensors: Tensor) -> Tensor:
    """Which rows are finite: ``(..., N)`` bool, True where every entry of the row is finite in every tensor.

    Each tensor is ``(..., N, k)`` (features, logits; a leading seed dimension allowed), so with
    stacked seeds a row is finite or not per seed.
    """
    finite = torch.isfinite(tensors[0]).all(-1)
    for tensor in tensors[1:]:
        finite = finite & torch.isfinite(tensor).all(-1)
    return finite


def tensors_of(outputs: Any) -> tuple[Tensor, ...]:
    if outputs is None:
        return ()
    return outputs if isinstance(outputs, tuple) else (outputs,)


def clean_batch(target: Tensor, num_classes: int, tensors: tuple[Tensor, ...]) -> bool:
    """:func:`read_clean_batch`, kept out of ``torch.compile`` graphs (see there).

    The compiler's door is opened here, at the first check, not when this module is imported:
    importing it (``torch._dynamo``) costs over a second, which every command would pay.
    """
    return _outside_graphs()(target, num_classes, tensors)


@functools.cache
def _outside_graphs():
    return torch.compiler.disable(read_clean_batch)


def read_clean_batch(target: Tensor, num_classes: int, tensors: tuple[Tensor, ...]) -> bool:
    """Whether every label lies in ``[0, num_classes)`` and every tensor is finite, read on the host.

    A sum is finite only if every summand is, so one reduction per tensor tells (half-precision
    tensors are summed in float32 lest finite values overflow; a sum that overflows from finite
    values merely sends the batch the general way, which finds every row finite). The labels'
    range and the sums come back in one host read, as floats: exact for labels below 2^24, and
    read in float64 for larger label sets. Kept out of ``torch.compile`` graphs: the host read
    splits the graph there anyway, and disabling it says so instead of warning about a
    data-dependent graph break. A bool is what the compiled rest depends on, so it is compiled
    at most twice.
    """
    with torch.no_grad():
        low, high = torch.aminmax(target)
        if num_classes > 2**24:
            low, high = low.double(), high.double()
        sums = [t.sum(dtype=torch.float32) if t.dtype in HALF_DTYPES else t.sum() for t in tensors]
        low, high, *sums = torch.stack([low, high, *sums]).tolist()
    return low >= 0 and high < num_classes and all(map(math.isfinite, sums))


def poison(features: Tensor, bad: Tensor) -> Tensor:
    """NaN (per seed) where any ``bad`` row, else 0; its gradient is NaN on the bad rows' features only.

    Added to a loss computed without the bad rows, it keeps the loss from looking healthy and
    sends the backbone a non-finite gradient from exactly those rows (what they would have sent),
    while the method's own parameters and buffers never see them.
    """
    bad = bad.unsqueeze(-1)
    marked = torch.where(bad, features, 1.0) * torch.where(bad, float("nan"), 0.0).to(features.dtype)
    return marked.sum((-2, -1))


def trust_batches(module: torch.nn.Module) -> None:
    """Turn off the per-batch check (``Method.check_batches``) of every method in ``module``: for a
    trainer whose labels were checked when read and whose rows all count, so that no step reads a
    device value on the host."""
    for part in module.modules():
        if hasattr(part, "check_batches"):
            part.check_batches = False
