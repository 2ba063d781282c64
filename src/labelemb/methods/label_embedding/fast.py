"""The single-model fast path of :class:`~labelemb.methods.label_embedding.method.LabelEmbedding`.

A single model's step (features ``(N, d)``) with ``fast_path=True`` computes ``o1`` and ``o2``
as one matrix product outside autograd and the gradients of
:func:`~labelemb.methods.label_embedding.loss.label_embedding_loss` in closed form, which costs far
less than autograd through the formula's some thirty small operations. The tests pin its value
and gradients to the formula. Batches larger than a chunk take
:mod:`~labelemb.methods.label_embedding.chunked` instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from ..base import Rows
from .loss import normalisation


@torch.no_grad()
def both_heads(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``[z1, z2] = h W^T + b``, (N, 2m), outside autograd: the fast path's gradients are by hand."""
    return torch.addmm(b, h, w.t())


class LabelEmbeddingHead(torch.autograd.Function):
    """Both output layers and the loss of Sun et al. (2017), Section 2, with gradients by hand.

    Every stop-gradient of the method is a constant here, so the gradients are short closed
    forms. Computing them directly, and ``o1`` and ``o2`` as one matrix product, instead of
    through a graph of some thirty small autograd nodes keeps the head cheap (bench/overhead.py
    measures what it still costs). With ``T1 = (w_gold onehot + w_soft softmax(e)) / n``
    and ``Te = softmax(z2 / tau) mask / Z``:

    - ``dL/dz1 = p1 rowsum(T1) - T1`` (plus whatever reaches the returned logits ``z1``)
    - ``dL/dz2 = (p2 - onehot) (1/n - c p2[y])`` with ``c`` the penalty's slope in ``p2[y]``
    - ``dL/de  = softmax(e) rowsum(Te) - Te``
    - ``dL/dh = dL/dz1 W1`` only: ``z2 = o2(sg(h))`` never reaches the backbone.

    The loss value takes no part in training (backward uses the closed forms), so it and the
    logged terms come from one weighted sum over rows. The tests check all of it against autograd
    through the plain formula and against hand computations.
    """

    @staticmethod
    def forward(ctx, h, w, b, z, e, rows: Rows, w_gold, w_soft, tau, alpha, nlp, fused):  # type: ignore[override]
        # z = [o1(h), o2(h)] = h W^T + b comes in computed (by both_heads): the input check reads it.
        weight = None if rows.weight is None else rows.weight[:, None]
        form = fused_closed_form() if fused else closed_form
        settings = (w_gold, w_soft, tau, alpha, nlp)
        loss, terms, grad_z, grad_e = form(z, e, rows.label[:, None], weight, rows.count, *settings)
        ctx.mark_non_differentiable(terms)
        # An output nobody differentiated (the logits, in training) gets None in backward, not a
        # tensor of zeros made and added each step: three operations fewer, each a kernel on a GPU.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(h, w, grad_z, grad_e)
        ctx.e_dtype = e.dtype
        return loss, z[:, : e.shape[1]], terms

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_logits, grad_terms):  # type: ignore[override]
        h, w, grad_z, grad_e = ctx.saved_tensors
        m = grad_e.shape[1]
        if grad_loss is None:  # only the returned logits were differentiated
            grad_loss = torch.zeros((), dtype=grad_z.dtype, device=grad_z.device)
        grad_z = grad_z * grad_loss
        if grad_logits is not None:  # someone also differentiated the returned logits
            grad_z[:, :m] += grad_logits
        # Under autocast h may be bf16 while the gradients are float32: multiply in float32 and
        # hand each input a gradient of its own dtype.
        grad_h = (grad_z[:, :m] @ w[:m].to(grad_z.dtype)).to(h.dtype) if ctx.needs_input_grad[0] else None
        grad_w = (grad_z.t() @ h.to(grad_z.dtype)).to(w.dtype)
        return grad_h, grad_w, grad_z.sum(0), None, (grad_e * grad_loss).to(ctx.e_dtype), *([None] * 7)


def closed_form(
    z: Tensor,
    e: Tensor,
    label: Tensor,
    weight: Tensor | None,
    count: Tensor | float,
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
    nlp: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The loss, its five terms and the gradients in ``z`` and ``e`` (before the loss's own
    gradient scales them): a pure function of the head's outputs, the rows' labels ``(N, 1)``,
    weights ``(N, 1)`` or None and count, which ``torch.compile`` can fuse (:func:`fused_closed_form`).
    """
    # Written for few tensor operations: at m = 10 each costs more in dispatch than in arithmetic.
    n, m = e.shape
    z2 = z[:, m:]
    row_scale = 1.0 / count if weight is None else weight / count
    # o1 and o2 in one call; e apart, since 3N rows would cross the kernel's threading threshold
    log_p = F.log_softmax(z.view(n, 2, m), dim=-1)
    p = log_p.exp()
    p1, p2 = p[:, 0], p[:, 1]
    log_q = F.log_softmax(e, dim=-1)
    q = log_q.exp()
    onehot = torch.zeros_like(e).scatter_(1, label, 1.0)
    teacher = torch.softmax(z2 / tau, dim=-1)

    correct = (z2.argmax(-1, keepdim=True) == label).to(z.dtype)
    if weight is not None:
        correct = correct * weight
    normalised = normalisation(count, nlp)
    mask = correct / normalised.emb_divisor(correct.sum)
    target_e = teacher * mask
    gap = p2.gather(1, label) - alpha  # o2's gold probability minus alpha
    penalty_rows, slope = normalised.penalty(gap), normalised.slope(gap)
    if weight is not None:
        penalty_rows, slope = penalty_rows * weight, slope * weight
    penalty_rows, slope = normalised.scale_penalty(penalty_rows), normalised.scale_penalty(slope)

    loss, terms = _loss_and_terms(
        log_p, log_q, label, q, target_e, penalty_rows, weight, count, w_gold, w_soft
    )

    # The gradients are closed forms of what is at hand: form them now, scale them in backward.
    # Rows of onehot, softmax(e) and the teacher sum to 1, which shortens dL/dz1 and dL/de.
    target1 = torch.add(onehot * w_gold, q, alpha=w_soft)
    grad_z = torch.cat(
        [
            (p1 * (w_gold + w_soft) - target1) * row_scale,
            (p2 - onehot) * (row_scale - (gap + alpha) * slope),
        ],
        dim=1,
    )
    grad_e = (q - teacher) * mask
    return loss, terms, grad_z, grad_e


@functools.cache
def fused_closed_form() -> Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]:
    """:func:`closed_form` through ``torch.compile``: its forty-odd small operations as a few fused
    kernels (``fast_path="fused"``). Compiled on first use (seconds), again for each new shape or
    constant (the nlp variant's soft weight turning on); on a CPU it needs a C++ compiler."""
    return compiled_unless_dispatching(closed_form)


def compiled_unless_dispatching(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` through ``torch.compile``, but run as written under a torch dispatch mode,
    which dynamo does not trace: a run counts its FLOPs under ``FlopCounterMode``, and the
    function's matrix products are the same either way."""
    compiled = torch.compile(function, fullgraph=True, dynamic=False)

    @functools.wraps(function)
    def run(*args: Any) -> Any:
        return function(*args) if is_in_torch_dispatch_mode() else compiled(*args)

    return run


def _loss_and_terms(
    log_p: Tensor,
    log_q: Tensor,
    label: Tensor,
    q: Tensor,
    target_e: Tensor,
    penalty_rows: Tensor,
    weight: Tensor | None,
    count: Tensor | float,
    w_gold: float,
    w_soft: float,
) -> tuple[Tensor, Tensor]:
    """The loss and its five terms (ce_o1, soft_o1, ce_o2, emb, penalty) from one sum over rows.

    Per row: ``log p1[y]``, ``q . log p1``, ``log p2[y]``, ``Te . log q`` and the penalty.
    """
    gold = log_p.gather(2, label[:, None].expand(-1, 2, 1))
    per_row = torch.cat(
        [
            gold[:, 0],
            (q * log_p[:, 0]).sum(-1, keepdim=True),
            gold[:, 1],
            (target_e * log_q).sum(-1, keepdim=True),
            penalty_rows,
        ],
        dim=1,
    )
    if weight is not None:
        per_row[:, :3] *= weight
    sums = per_row.sum(0)
    if isinstance(count, Tensor):
        sums[:3] /= count
        count = 1.0
    c = -1.0 / count
    # Row 0 turns the sums into the terms, row 1 into the weighted loss.
    coefficients = sums.new_tensor([c, c, c, -1.0, 1.0, c * w_gold, c * w_soft, c, -1.0, 1.0]).view(2, 5)
    return sums @ coefficients[1], sums * coefficients[0]
