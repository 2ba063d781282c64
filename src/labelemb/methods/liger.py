"""Liger-Kernel's fused linear cross-entropy as the hard-label baseline's chunked head on a GPU.

A vocabulary-sized head of ``onehot`` computes nothing of its own that a well-kept library does not
already do: Liger-Kernel's fused linear cross-entropy (Hsu et al. 2024, "Liger Kernel: Efficient
Triton Kernels for LLM Training", Section 3.3) forms each chunk's logits, the loss and the logit
gradient in one Triton pass. So where it is installed (the ``liger`` extra) and the batch is on a
device of :data:`LIGER_DEVICES`, onehot's chunked head is Liger's, and a comparison against the
baseline is a comparison against the kernel users already have. It computes::

    L = sum_i [(1 - eps) H(y_i, p_i) + eps H(u, p_i)] / count,   p_i = softmax(W h_i + b)

(``eps = 0`` for ``onehot``), the same loss as :func:`~labelemb.methods.chunked.chunked_linear_loss`
with the method's :meth:`row_loss`. What differs: it gives the loss alone, not each term (so
``label_smoothing``, which logs its two terms, keeps its own head), and a row whose logits are not
finite makes every gradient NaN, not only that row's features' (the step is lost either way). Liger
0.8.5 also reads the number of rows that count on the host each step (a ``.item()`` in its own
code: one GPU wait a step, which labelemb's heads avoid)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from .chunked import Precision

#: Devices whose hard-label chunked heads run through Liger's kernel when it is installed: Triton
#: compiles for GPUs (on a CPU it only interprets, with ``TRITON_INTERPRET=1``: how CI checks it).
LIGER_DEVICES = frozenset({"cuda"})


@functools.cache
def liger_loss_function() -> Callable[..., Tensor] | None:
    """Liger's ``liger_fused_linear_cross_entropy``, or None where the ``liger`` extra is not installed."""
    try:
        # lazy: the liger extra (Triton), and seconds to import: only when a head needs it
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None
    return liger_fused_linear_cross_entropy


def runs_on_liger(device: torch.device) -> bool:
    """Whether a hard-label chunked head on ``device`` is Liger's (:data:`LIGER_DEVICES`, installed)."""
    return device.type in LIGER_DEVICES and liger_loss_function() is not None


def liger_linear_loss(
    h: Tensor, weight: Tensor, bias: Tensor, label: Tensor, count: Tensor | float, epsilon: float
) -> Tensor:
    """``sum_i CE_eps(W h_i + b, y_i) / count`` over the rows ``h`` that count, by Liger's kernel.

    The matrix products run in autocast's dtype where autocast is on, else in the features' (as the
    chunked heads do); Liger accumulates the softmax in float32.
    """
    loss_function = liger_loss_function()
    if loss_function is None:
        raise RuntimeError('Liger-Kernel is not installed: pip install "labelemb[liger]"')
    precision = Precision(h)
    with precision.manual():
        summed = loss_function(
            precision.cast(h),
            precision.cast(weight),
            label,
            precision.cast(bias),
            label_smoothing=epsilon,
            reduction="sum",
        )
    return summed.float() / count
