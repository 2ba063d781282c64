"""The trained side of ``model.name: tfidf`` with ``projection: learned``: a learned projection of a
text's TF-IDF, ``h = ReLU(sum_j x_j E[j] + b)`` over its terms ``j`` (weights ``x_j``), then
dropout (fastText's bag, Joulin et al. 2017, Section 2, weighted by TF-IDF instead of averaged).

Its inputs are a text's TF-IDF entries, float32 ``(L, 2)``: column 0 a term's id (an integer,
exact in float32 below 2^24 terms), column 1 its weight; padding is the id ``V`` (one past the
last term) with weight 0, which reads a row of zeros that never trains. The table ``E``'s gradient
is sparse (the rows a batch's texts touched), which :class:`~labelemb.assembly.sparse_adam.RowSparseAdam`
steps lazily: a step costs in proportion to the batch's terms, not the vocabulary's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Ids at or above this are not exact in float32: a table this large is refused.
EXACT_IDS = 2**24


def entry_parts(entries: Tensor) -> tuple[Tensor, Tensor]:
    """The term ids (int64) and weights of TF-IDF entries ``(..., L, 2)``."""
    return entries[..., 0].long(), entries[..., 1]


class _StackedRows(torch.autograd.Function):
    """Each seed's weighted bag from its own table, seeds side by side: ``(S, B, d)`` from a table
    ``(S, V + 1, d)`` and ids and weights ``(S, B, L)``; the table's gradient is sparse over
    (seed, row) pairs, so a stacked step touches only the rows its texts read."""

    @staticmethod
    def forward(ctx: Any, table: Tensor, ids: Tensor, weights: Tensor) -> Tensor:
        seeds, rows, width = table.shape
        flat = (ids + torch.arange(seeds, device=ids.device).mul_(rows).view(seeds, 1, 1)).flatten(0, 1)
        flat_weights = weights.flatten(0, 1)
        ctx.save_for_backward(flat, flat_weights)
        ctx.table_shape = table.shape
        bags = F.embedding_bag(
            flat, table.reshape(seeds * rows, width), per_sample_weights=flat_weights, mode="sum"
        )
        return bags.unflatten(0, (seeds, ids.shape[1]))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        flat, flat_weights = ctx.saved_tensors
        seeds, rows, width = ctx.table_shape
        # Each touched (seed, row) once: its gradient is the weighted sum of the bags that read it,
        # a sparse (rows x bags) by dense (bags x width) product: one value per touched row, not one
        # per entry read (a batch's texts share most of their terms).
        touched, slot = torch.unique(flat.reshape(-1), sorted=True, return_inverse=True)
        bag_of_entry = torch.arange(flat.shape[0], device=flat.device).repeat_interleave(flat.shape[1])
        reads = torch.sparse_coo_tensor(
            torch.stack([slot, bag_of_entry]),
            flat_weights.reshape(-1).to(grad.dtype),
            (len(touched), flat.shape[0]),
            check_invariants=False,
        )
        values = torch.sparse.mm(reads, grad.flatten(0, 1))
        indices = torch.stack([torch.div(touched, rows, rounding_mode="floor"), touched.remainder(rows)])
        table_grad = torch.sparse_coo_tensor(indices, values, (seeds, rows, width), check_invariants=False)
        return table_grad, None, None


class TermBag(nn.Module):
    """``ReLU(sum_j x_j E[j] + b)`` then dropout over a text's TF-IDF entries (see the module's
    docstring); ``E`` is ``(V + 1, width)``, row ``V`` padding (zero, never trained)."""

    output_init_std = None

    def __init__(self, terms: int, width: int = 256, dropout: float = 0.5, init_std: float = 0.01) -> None:
        super().__init__()
        if terms < 1 or terms >= EXACT_IDS:
            raise ValueError(f"a term bag holds 1 to {EXACT_IDS - 1:,} terms, got {terms:,}")
        if width < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"width must be >= 1 and dropout in [0, 1), got {width}, {dropout}")
        self.terms = int(terms)
        self.table = nn.Parameter(torch.randn(terms + 1, width) * init_std)
        with torch.no_grad():
            self.table[terms].zero_()
        self.bias = nn.Parameter(torch.zeros(width))
        self.dropout = float(dropout)
        self.out_features = int(width)

    def forward(self, entries: Tensor) -> Tensor:
        ids, weights = entry_parts(entries)
        bags = F.embedding_bag(
            ids, self.table, per_sample_weights=weights, mode="sum", sparse=True, padding_idx=self.terms
        )
        return F.dropout(torch.relu(bags + self.bias), self.dropout, self.training)

    def stacked_forward(self, params: Mapping[str, Tensor], entries: Tensor) -> Tensor:
        """``(S, B, width)`` from entries ``(S, B, L, 2)``, seed ``s`` through its own table and bias
        (the batched trainer's hook)."""
        ids, weights = entry_parts(entries)
        # Padding reads row V with weight 0: nothing flows to it, and it starts at zero.
        bags = _StackedRows.apply(params["table"], ids, weights)
        hidden = torch.relu(bags + params["bias"].unsqueeze(1))
        return F.dropout(hidden, self.dropout, self.training)
