"""Output layers over many labels, computed chunk by chunk of rows, so that memory follows the chunk.

With a vocabulary of V labels and N target tokens, a head that forms its logits for every row at
once holds several N x V tensors (logits, probabilities, their gradients) at the same time. A
chunked head computes a chunk of rows' logits, their loss terms and every gradient in the forward
pass, adds the gradients into accumulators and drops the chunk before the next, as fused
linear-cross-entropy kernels do; backward then only scales what forward accumulated. Only the rows
that count (see :class:`~labelemb.methods.base.Method`) are computed, so padding costs nothing.

This module holds what every chunked head shares: when to chunk (:func:`rows_per_chunk`), and the
chunked linear layer with a per-row loss that the linear-output baselines plug their closed-form
gradients into (:func:`chunked_linear_loss`). The rows that take part are
:meth:`~labelemb.methods.base.Rows.counted`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

#: Logits entries (rows x width) per chunk at most, when ``chunk_size`` is left to choose: 2^23
#: float32 entries, 32 MiB for each chunk-sized tensor, big enough for the matrix products to run at speed.
AUTO_CHUNK_ENTRIES = 2**23
#: Rows per chunk the automatic size keeps to where the batch allows: in chunks of fewer rows the
#: chunk's matrix products run well below speed on a CPU (a 163-row chunk of an 8,000-word
#: vocabulary's two heads at about 3/4 of a 512-row chunk's GFLOP/s).
MIN_CHUNK_ROWS = 256

# A chunk's rows -> (per-row terms (n, T), gradient of the per-row loss with respect to the logits (n, V)).
RowLoss = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def rows_per_chunk(chunk_size: int | None, num_rows: int, width: int) -> int | None:
    """Rows per chunk for a batch of ``num_rows`` rows with ``width`` logits each, or None for no chunking.

    ``chunk_size=None`` computes a batch of up to :data:`AUTO_CHUNK_ENTRIES` logits at once (a
    classification batch always is) and chunks a larger one into chunks of at most that many
    entries and at most 1/8 of its rows, so that a chunk's tensors stay a small part of what a
    plain cross-entropy holds (about three ``num_rows x width`` tensors), unless that is fewer
    than :data:`MIN_CHUNK_ROWS` rows, for speed. The rows are then shared out evenly among as
    many chunks as that takes. A batch no larger than one chunk is computed at once and returns
    its logits.
    """
    if chunk_size is not None:
        return chunk_size if num_rows > chunk_size else None
    if num_rows * width <= AUTO_CHUNK_ENTRIES:
        return None
    most = max(1, min(AUTO_CHUNK_ENTRIES // width, max(-(-num_rows // 8), MIN_CHUNK_ROWS)))
    chunks = -(-num_rows // most)
    return -(-num_rows // chunks)


def check_chunk_size(chunk_size: int | None) -> None:
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(
            f"chunk_size must be a number of rows >= 1, or None to choose automatically; got {chunk_size!r}"
        )


class _ChunkedLinearLoss(torch.autograd.Function):
    """``mean_i loss_i(W h_i + b)`` over chunks of rows, gradients formed in forward.

    ``row_loss`` maps a chunk's logits and labels to its per-row terms and the gradient of the
    per-row loss (the terms weighted by ``term_weights``) with respect to the logits.
    Rows whose logits are not finite are left out of every sum and gradient; the loss is then NaN
    and those rows' features get a NaN gradient (as :class:`~labelemb.methods.base.Method` says).
    """

    @staticmethod
    def forward(ctx, h, weight, bias, label, count, chunk_rows, row_loss, term_weights):  # type: ignore[override]
        def run(rows: Tensor | None, count: Tensor | float):
            return _linear_chunks(h, weight, bias, label, rows, count, chunk_rows, row_loss, term_weights)

        loss, term_values, grads = without_rows_that_overflow(run, h.shape[0], count)
        ctx.save_for_backward(*grads)
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        ctx.mark_non_differentiable(term_values)
        ctx.set_materialize_grads(False)  # no tensor of zeros for the terms nobody differentiates
        return loss, term_values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_terms):  # type: ignore[override]
        return *scaled_grads(ctx.saved_tensors, grad_loss, ctx.dtypes), *([None] * 5)


def _linear_chunks(h, weight, bias, label, rows, count, chunk_rows, row_loss, term_weights):
    """One pass of :class:`_ChunkedLinearLoss` over ``rows`` of ``h`` (None: all)."""
    if rows is not None:
        h, label = h[rows], label[rows]
    precision = Precision(h)
    with precision.manual():
        weight_c, bias_c = precision.cast(weight), precision.cast(bias)
        grads = LinearGrads(h, weight)
        term_sums = h.new_zeros(len(term_weights), dtype=torch.float32)
        overflowing = []
        for start in range(0, h.shape[0], chunk_rows):
            chunk = slice(start, start + chunk_rows)
            h_c = precision.cast(h[chunk])
            terms, grad_z = chunk_step(h_c.device)(h_c, weight_c, bias_c, label[chunk], row_loss)
            overflowing.append(~torch.isfinite(terms).all(-1))
            grads.add(chunk, h_c, grad_z, weight_c)
            term_sums += terms.sum(0)
        term_values = term_sums / count
        loss = term_values @ term_values.new_tensor(term_weights)
    return loss, term_values, grads.scaled(1.0 / count), overflowing


def chunk_terms_and_grad(
    h_c: Tensor, weight: Tensor, bias: Tensor, label: Tensor, row_loss: RowLoss
) -> tuple[Tensor, Tensor]:
    """A chunk's logits, per-row terms and logit gradient (in the chunk's dtype): a pure function,
    which ``torch.compile`` fuses into the matrix product and one pass over the chunk."""
    terms, grad_z = row_loss(linear_logits(h_c, weight, bias), label)
    return terms, grad_z.to(h_c.dtype)


#: Devices whose chunks run through :func:`fused_chunk_terms_and_grad` (a GPU: there a chunk's dozen
#: small passes over V columns cost launches and memory traffic); elsewhere the eager pass, as measured.
FUSED_DEVICES = frozenset({"cuda"})


def fuses(device: torch.device) -> bool:
    """Whether chunks on ``device`` are computed by a ``torch.compile``'d function (:data:`FUSED_DEVICES`)."""
    return device.type in FUSED_DEVICES


def chunk_step(device: torch.device) -> Callable[..., tuple[Tensor, Tensor]]:
    """How a chunk is computed on ``device``: fused where :func:`fuses` says, else eagerly."""
    return fused_chunk_terms_and_grad() if fuses(device) else chunk_terms_and_grad


@functools.cache
def fused_chunk_terms_and_grad() -> Callable[..., tuple[Tensor, Tensor]]:
    """:func:`chunk_terms_and_grad` through ``torch.compile``: compiled per method, and again, with
    dynamic shapes, the first time a chunk of another number of rows comes (a batch's last chunk)."""
    return torch.compile(chunk_terms_and_grad)


def without_rows_that_overflow(run, num_rows: int, count: Tensor | float):
    """``run(None, count)``, the chunked pass over all rows, or, when it finds rows whose logits are
    not finite, its result over the other rows, with a NaN loss and NaN gradient for those rows' features.

    ``run(rows, count)`` returns ``(loss, terms, grads, overflowing)``: ``grads[0]`` is the
    features' gradient and ``overflowing`` each chunk's bool mask of rows whose terms were not finite.
    Such rows are rare (the step is lost anyway), so they cost a second pass rather than a check
    before every chunk.
    """
    loss, terms, grads, chunk_masks = run(None, count)
    overflowing = torch.cat([grads[0].new_zeros(0, dtype=torch.bool), *chunk_masks])
    if not bool(overflowing.any()):
        return loss, terms, grads
    kept = (~overflowing).nonzero().squeeze(-1)
    loss, terms, grads, _ = run(kept, count - (num_rows - len(kept)))
    grad_h = grads[0].new_full((num_rows, *grads[0].shape[1:]), float("nan")).index_copy_(0, kept, grads[0])
    return loss + float("nan"), terms, (grad_h, *grads[1:])


def scaled_grads(grads: tuple[Tensor, ...], grad_loss: Tensor, dtypes: list[torch.dtype]) -> list[Tensor]:
    """Gradients formed in forward times the incoming ``dL_total/dL``, each in its input's dtype.

    A plain ``loss.backward()`` passes 1: then the (parameter-sized) gradients are handed on as they are.
    """
    if bool(grad_loss == 1):
        return [grad.to(dtype) for grad, dtype in zip(grads, dtypes)]
    return [(grad * grad_loss).to(dtype) for grad, dtype in zip(grads, dtypes)]


class Precision:
    """The dtype a chunked head multiplies in: autocast's, when autocast is on, else the features'.

    Chunked heads run their arithmetic with autocast off and cast by hand: the matrix products in
    the compute dtype, the softmaxes and every accumulation in float32 (as autocast would do).
    """

    def __init__(self, like: Tensor) -> None:
        self.device_type = like.device.type
        autocast = torch.is_autocast_enabled(self.device_type)
        self.dtype = torch.get_autocast_dtype(self.device_type) if autocast else like.dtype

    def manual(self) -> torch.autocast:
        return torch.autocast(self.device_type, enabled=False)

    def cast(self, tensor: Tensor) -> Tensor:
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor


def linear_logits(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``h W^T + b`` in float32 (computed in the dtype of ``h``)."""
    return torch.addmm(bias, h, weight.t()).float()


class LinearGrads:
    """Float32 accumulators of a linear layer's gradients (``h``, ``W``, ``b``) over chunks of rows."""

    def __init__(self, h: Tensor, weight: Tensor, out_rows: slice = slice(None)) -> None:
        self.h = torch.zeros_like(h, dtype=torch.float32)
        self.w = torch.zeros_like(weight, dtype=torch.float32)
        self.b = self.w.new_zeros(self.w.shape[0])
        self.out_rows = out_rows  # the outputs whose gradient reaches h (o1 only, for label_embedding)

    def add(self, rows: slice, h_c: Tensor, grad_z: Tensor, weight: Tensor) -> None:
        """Add a chunk's share: its ``rows`` of the batch, their features ``h_c`` and ``dL/dz``."""
        grad_z_in = grad_z[:, self.out_rows]
        if grad_z.dtype == torch.float32:  # in place: no temporaries per chunk
            torch.mm(grad_z_in, weight[self.out_rows], out=self.h[rows])
            self.w.addmm_(grad_z.t(), h_c)
        else:
            self.h[rows] = grad_z_in @ weight[self.out_rows]
            self.w += (grad_z.t() @ h_c).float()
        self.b += grad_z.sum(0, dtype=torch.float32)

    def scaled(self, scale: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
        """The gradients times ``scale``, in place (no second copy of ``W``'s gradient)."""
        return self.h.mul_(scale), self.w.mul_(scale), self.b.mul_(scale)


def chunked_linear_loss(
    h: Tensor,
    weight: Tensor,
    bias: Tensor,
    label: Tensor,
    count: Tensor | float,
    chunk_rows: int,
    row_loss: RowLoss,
    term_weights: dict[str, float],
) -> tuple[Tensor, dict[str, Tensor]]:
    """``mean_i loss_i(W h_i + b)`` over the rows ``h`` (those that count) and their labels,
    ``chunk_rows`` rows at a time, divided by ``count``; and each term, by name.

    ``term_weights`` names the terms ``row_loss`` returns, in order, with their weights in the loss.
    """
    loss, values = _ChunkedLinearLoss.apply(
        h, weight, bias, label, count, chunk_rows, row_loss, tuple(term_weights.values())
    )
    return loss, dict(zip(term_weights, values.unbind()))


def subtract_at_labels(values: Tensor, label: Tensor, amount: float) -> Tensor:
    """``values[i, label[i]] -= amount`` for each row, in place; returns ``values``."""
    return values.scatter_add_(1, label[:, None], values.new_full((label.shape[0], 1), -amount))
