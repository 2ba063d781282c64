"""Adam that also steps parameters whose gradient is sparse: the rows of a term table
(:class:`~labelemb.models.term_bag.TermBag`) that a batch's texts touched.

A table of 300,000 TF-IDF terms by 256 units is 77M numbers; a batch of 64 texts touches about
6,000 of its rows. PyTorch's ``Adam`` refuses a sparse gradient and, made dense, would read and
write all 77M numbers (and their two moments) every step, some 50 times the work of the rows that
changed. :class:`RowSparseAdam` is ``torch.optim.Adam`` for every dense gradient and, for a sparse
one, the lazy update of PyTorch's ``SparseAdam``: each touched row's moments and weights step as
Adam's would, the other rows wait. Its state has Adam's fields, so checkpoints, resuming and the
batched trainer's per-seed state move through it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class RowSparseAdam(torch.optim.Adam):
    """``torch.optim.Adam``; a parameter whose gradient is sparse (a COO tensor over leading rows)
    steps lazily (Kingma & Ba 2015, Algorithm 1, on the touched rows ``r`` only):
    ``m_r <- b1 m_r + (1 - b1) g_r``, ``v_r <- b2 v_r + (1 - b2) g_r^2``,
    ``w_r <- w_r - lr (m_r / (1 - b1^t)) / (sqrt(v_r / (1 - b2^t)) + eps)``, ``t`` counting the
    parameter's steps (as ``SparseAdam``)."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            # First, as every optimiser: the closure makes the gradients this step takes.
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None and param.grad.is_sparse:
                    self._rows_step(param, group)
                    # Stepped: Adam's own pass below must not see it (it refuses sparse gradients).
                    param.grad = None
        super().step()
        return loss

    def _rows_step(self, param: Tensor, group: dict[str, Any]) -> None:
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError(
                "a table with sparse gradients steps with plain Adam: no weight_decay, amsgrad or maximize"
            )
        grad = param.grad
        if not grad.is_coalesced():  # type: ignore[union-attr]
            grad = grad.coalesce()  # type: ignore[union-attr]
        # The touched rows as positions in the parameter seen as (rows, trailing): one index per
        # row, whatever the leading sparse dimensions (a stacked table's are (seed, row)).
        rows = _flat_rows(grad.indices(), param.shape[: grad.sparse_dim()])
        # The trailing width from the shape, not the values: a step that touched no row has none.
        width = math.prod(param.shape[grad.sparse_dim() :])
        values = grad.values().reshape(len(rows), width)
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        for moment in ("exp_avg", "exp_avg_sq"):
            if not state[moment].is_contiguous():  # a checkpoint's, read back as it was saved
                state[moment] = state[moment].contiguous()
        beta1, beta2 = group["betas"]
        step = state["step"].add_(1)
        first_all = state["exp_avg"].view(-1, width)
        second_all = state["exp_avg_sq"].view(-1, width)
        first = first_all.index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
        second = second_all.index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        first_all.index_copy_(0, rows, first)
        second_all.index_copy_(0, rows, second)
        # Bias corrections as tensors: no read of the step count on the host.
        correction1 = 1 - torch.pow(beta1, step)
        correction2 = 1 - torch.pow(beta2, step)
        denominator = second.div_(correction2).sqrt_().add_(group["eps"])
        update = first.div_(denominator).mul_(-float(group["lr"]) / correction1)
        # A parameter seen through a permutation has no (rows, width) view: stepped on a copy.
        target = param if param.is_contiguous() else param.contiguous()
        target.view(-1, width).index_add_(0, rows, update)
        if target is not param:
            param.copy_(target)


def _flat_rows(indices: Tensor, sparse_shape: torch.Size) -> Tensor:
    """Row positions, in the parameter flattened over its sparse dimensions, of a coalesced
    gradient's ``indices`` (sparse_dim, nnz): row-major, so distinct and sorted."""
    rows = indices[0]
    for dim in range(1, indices.shape[0]):
        rows = rows * sparse_shape[dim] + indices[dim]
    return rows
