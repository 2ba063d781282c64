"""Tensors with an optional leading seed dimension: the few operations methods and backbones share.

The batched trainer trains S seeds side by side by stacking each parameter and buffer along a
new dimension 0. Methods are written once, for tensors of shape ``(N, ...)`` *or* ``(S, N, ...)``:
these helpers are the operations whose plain PyTorch form does not broadcast over that leading
dimension (a linear layer, picking rows of a table, adding into rows of a table), and
:func:`stack_modules` / :func:`unstack_into` move a module's tensors into and out of the stack.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _GroupedLinear(torch.autograd.Function):
    """``y[s] = x[s] W[s]^T + b[s]`` for each seed ``s``: x (S, B, in), W (S, out, in), b (S, out).

    Through plain autograd, ``bmm(x, W^T)`` hands ``W`` its gradient as the transpose of
    ``bmm(x^T, g)``, which then costs a strided copy into the parameter's layout; here it is
    formed as ``bmm(g^T, x)``, already in that layout, and the input gradient is skipped when
    the input needs none (the images).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` for one seed (``weight`` 2-D) or each seed of a stack (``weight`` (S, out, in))."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    return _GroupedLinear.apply(x, weight, bias)


def rows_of(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]``: (m, d) and (N,) give (N, d); stacked, (S, m, d) and (S, N) give (S, N, d)."""
    if table.dim() == 2 and index.dim() == 1:
        return table.index_select(0, index)
    return table.gather(-2, index.unsqueeze(-1).expand(*index.shape, table.shape[-1]))


def add_to_rows(table: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """``table[index] += values`` in place, repeated indices adding up (``index_add_`` per seed)."""
    return table.scatter_add_(*_scatter_rows(table, index, values), values)


def write_rows(table: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """``table[index] = values`` in place (``index_copy_`` per seed)."""
    return table.scatter_(*_scatter_rows(table, index, values), values)


def _scatter_rows(table: Tensor, index: Tensor, values: Tensor) -> tuple[int, Tensor]:
    """The dimension and index with which a scatter addresses the rows ``index`` of ``table``."""
    if table.dim() == index.dim():  # a vector, one entry per row: (m,) or (S, m)
        return -1, index
    return -2, index.unsqueeze(-1).expand_as(values)


def stack_modules(modules: Sequence[nn.Module]) -> nn.Module:
    """One module of the same class whose every parameter and buffer is the seeds' stacked along dim 0.

    A deep copy of ``modules[0]`` with each tensor replaced by ``torch.stack`` of the modules'
    tensors (fresh storage; parameters keep ``requires_grad``); ``stacked_seeds`` says how many.
    """
    stacked = copy.deepcopy(modules[0])
    named = [dict(_named_tensors(module)) for module in modules]
    for name, tensor in _named_tensors(modules[0]):
        owner, leaf = _owner(stacked, name)
        value = torch.stack([tensors[name].detach() for tensors in named]).contiguous()
        if isinstance(tensor, nn.Parameter):
            setattr(owner, leaf, nn.Parameter(value, requires_grad=tensor.requires_grad))
        else:
            owner._buffers[leaf] = value
    stacked.stacked_seeds = len(modules)
    return stacked


@torch.no_grad()
def unstack_into(stacked: nn.Module, modules: Sequence[nn.Module]) -> None:
    """Copy seed ``s``'s slice of every stacked parameter and buffer into ``modules[s]``."""
    tensors = dict(_named_tensors(stacked))
    for s, module in enumerate(modules):
        for name, tensor in _named_tensors(module):
            tensor.copy_(tensors[name][s])


def _named_tensors(module: nn.Module) -> list[tuple[str, Tensor]]:
    return [*module.named_parameters(), *module.named_buffers()]


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    for part in path:
        module = getattr(module, part)
    return module, leaf
