"""The single-model fast path of the tag embedding (:mod:`~labelemb.methods.label_embedding.tags`).

A single model's step on tag sets (features ``(N, d)``) with ``fast_path`` on computes ``o1`` and
``o2`` as one matrix product outside autograd and the gradients of
:func:`~labelemb.methods.label_embedding.tags.tag_embedding_loss` in closed form: autograd through
the formula's some forty small operations on ``(N, K)`` and ``(K, K)`` tensors costs more than
their arithmetic (``bench/multi_label_step.py`` measures both). The tests pin its value and
gradients to the formula. Stacked seeds take the formula through autograd. With
``fast_path="fused"`` the closed forms run through ``torch.compile`` (:func:`fused_tag_closed_form`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from .fast import compiled_unless_dispatching
from .tags import tag_rows


class TagEmbeddingHead(torch.autograd.Function):
    """Both output layers and the tag embedding's loss, with gradients by hand.

    Every stop-gradient of the loss is a constant here, so its gradients are short closed forms.
    With ``p = sigmoid(z)``, ``t`` the soft tag set, ``M`` the mask, ``c = 1^T M`` its count per tag,
    ``S = sigmoid(z2 / tau)``, ``R = s (2 E - 1)`` and ``B`` the rows' count:

    - ``dL/dz1 = ((w_gold + w_soft) p1 - w_gold y - w_soft t) / B`` (plus whatever reaches the
      returned logits ``z1``)
    - ``dL/dz2 = (p2 - y + y [p2 > alpha] p2 (1 - p2)) / B``
    - ``dL/dE  = 2 s (c sigmoid(R) - M^T S) / (sum c + 1e-8)``
    - ``dL/dh  = dL/dz1 W1`` only: ``z2 = o2(sg(h))`` never reaches the backbone.
    """

    @staticmethod
    def forward(ctx, h, w, b, z, embedding, tags, divisor, w_gold, w_soft, tau, alpha, fused):  # type: ignore[override]
        # z = [o1(h), o2(h)] = h W^T + b comes in computed (by both_heads), as for one label a row.
        closed_form = fused_tag_closed_form() if fused else tag_closed_form
        loss, terms, grad_z, grad_e = closed_form(
            at_least_float32(z), at_least_float32(embedding), tags, divisor, w_gold, w_soft, tau, alpha
        )
        ctx.mark_non_differentiable(terms)
        ctx.set_materialize_grads(False)  # no tensor of zeros for an output nobody differentiated
        ctx.save_for_backward(h, w, grad_z, grad_e)
        ctx.e_dtype = embedding.dtype
        return loss, z[:, : embedding.shape[-1]], terms

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_logits, grad_terms):  # type: ignore[override]
        h, w, grad_z, grad_e = ctx.saved_tensors
        k = grad_e.shape[-1]
        if grad_loss is None:  # only the returned logits were differentiated
            grad_loss = torch.zeros((), dtype=grad_z.dtype, device=grad_z.device)
        grad_z = grad_z * grad_loss
        if grad_logits is not None:
            grad_z[:, :k] += grad_logits
        # Under autocast h may be bf16 while the gradients are float32: multiply in float32 and
        # hand each input a gradient of its own dtype.
        grad_h = (grad_z[:, :k] @ w[:k].to(grad_z.dtype)).to(h.dtype) if ctx.needs_input_grad[0] else None
        grad_w = (grad_z.t() @ h.to(grad_z.dtype)).to(w.dtype)
        return grad_h, grad_w, grad_z.sum(0), None, (grad_e * grad_loss).to(ctx.e_dtype), *([None] * 7)


def tag_closed_form(
    z: Tensor,
    embedding: Tensor,
    tags: Tensor,
    divisor: Tensor | float,
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The loss, its five terms (as :data:`~labelemb.methods.label_embedding.tags.TAG_TERMS`) and
    the gradients in ``z = [z1, z2]`` ``(N, 2K)`` and ``E`` (before the loss's own gradient scales
    them), for the tag sets ``tags`` ``(N, K)`` and the rows' count ``divisor``."""
    k = embedding.shape[-1]
    y = tags.to(z.dtype)
    z1, z2 = z[:, :k], z[:, k:]
    p = torch.sigmoid(z)
    log_p = log_sigmoid(p, z)
    p1, p2 = p[:, :k], p[:, k:]
    row_logits = tag_rows(embedding)
    q = torch.sigmoid(row_logits)
    soft = (y @ q).div_(y.sum(-1, keepdim=True).clamp_(min=1.0))
    mask = y * (z2 > 0)
    counts = mask.sum(0)
    taught = mask.t() @ torch.sigmoid(z2 / tau)  # M^T S: each row's targets, summed over its pairs
    over = (p2 - alpha).clamp_(min=0.0)
    # BCE(z, t) summed = sum z - sum t z - sum log sigmoid(z): the five terms from seven sums.
    head_sums, log_sums = z.sum(0), log_p.sum(0)
    sums = torch.stack(
        [
            head_sums[:k].sum() - log_sums[:k].sum(),
            (y * z1).sum(),
            (soft * z1).sum(),
            head_sums[k:].sum() - log_sums[k:].sum(),
            (y * z2).sum(),
            # emb's numerator: sum_kj (c_k - (M^T S)_kj) R_kj - c_k log sigmoid(R_kj)
            counts @ (row_logits - log_sigmoid(q, row_logits)).sum(-1) - (taught * row_logits).sum(),
            (over * y).sum(),
        ]
    )
    pairs = counts.sum() + 1e-8
    ce_o1, soft_o1 = (sums[0] - sums[1]) / divisor, (sums[0] - sums[2]) / divisor
    ce_o2, emb, penalty = (sums[3] - sums[4]) / divisor, sums[5] / pairs, sums[6] / divisor
    terms = torch.stack([ce_o1, soft_o1, ce_o2, emb, penalty])
    loss = w_gold * ce_o1 + w_soft * soft_o1 + ce_o2 + emb + penalty

    # Functional, not written into slices of one buffer, so that torch.compile can fuse it.
    grad_z1 = (p1 * (w_gold + w_soft)).sub_(y, alpha=w_gold).sub_(soft, alpha=w_soft)
    slope = p2 * (1.0 - p2) * (over > 0)  # the penalty's, where o2 is past alpha on a carried tag
    grad_z2 = (p2 - y).addcmul_(y, slope)
    grad_z = torch.cat([grad_z1, grad_z2], dim=1).div_(divisor)
    scale = math.log(max(k - 1, 2))  # tag_rows' s: dR/dE = 2 s
    grad_e = (q * counts[:, None]).sub_(taught).mul_(2.0 * scale / pairs)
    return loss, terms, grad_z, grad_e


@functools.cache
def fused_tag_closed_form() -> Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]:
    """:func:`tag_closed_form` through ``torch.compile``: its fifty-odd passes over ``(N, K)`` and
    ``(K, K)`` tensors as a few fused kernels beside the two matrix products. Compiled on first use
    (seconds) and again for each new batch size; on a CPU it needs a C++ compiler."""
    return compiled_unless_dispatching(tag_closed_form)


def log_sigmoid(p: Tensor, z: Tensor) -> Tensor:
    """``log sigmoid(z)`` from ``p = sigmoid(z)``: ``log p``, or ``z`` itself where ``p`` underflows
    (there ``log sigmoid(z) = z - log(1 + e^z)`` is ``z`` to the last bit). One logarithm where
    ``F.logsigmoid`` takes an exponential and a logarithm again; where ``p`` rounds to 1, ``log p``
    is 0 against ``-e^-z``, an error below the dtype's epsilon."""
    return torch.where(p > torch.finfo(p.dtype).tiny, p.log(), z)


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if it is of a narrower float (bf16 or fp16 under autocast)."""
    return tensor.float() if torch.finfo(tensor.dtype).bits < 32 else tensor
