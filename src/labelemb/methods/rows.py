"""What a method's loss works over and returns: the rows of a batch that count (:class:`Rows`),
each row's value at its label (:func:`gold`) and a step's :class:`MethodOutput`.

Imported from :mod:`labelemb.methods.base` as well, where a method's author finds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class MethodOutput:
    """What one training step of a method returns.

    ``loss`` is a scalar ready for ``backward()``; ``logits`` are the ``(N, num_classes)``
    prediction scores of the batch, or None when the head worked through the rows in chunks (a
    large label set, where N x num_classes logits never exist at once: ``method.logits(features)``
    gives them); ``terms`` holds each loss term, detached, for logging.
    """

    loss: Tensor
    logits: Tensor | None
    terms: dict[str, Tensor] = field(default_factory=dict)


def gold(log_p: Tensor, label: Tensor) -> Tensor:
    """``log_p[..., i, label[..., i]]``: each row's value at its label."""
    return log_p.gather(-1, label.unsqueeze(-1)).squeeze(-1)


def one_hot(label: Tensor, num_classes: int) -> Tensor:
    """``(..., num_classes)`` bool, True at each row's label: ``F.one_hot`` without its host read
    of the labels' range (the caller's labels are in range)."""
    return label.unsqueeze(-1) == torch.arange(num_classes, device=label.device)


@dataclass
class Rows:
    """Which rows of a batch count towards a loss.

    ``label`` is the target with ignored rows set to class 0 (safe to index with); ``weight`` is
    1 for rows that count and 0 for the others (ignored, or not finite), or None when every row
    counts (the common case, which then needs no masking work); ``count`` is how many rows count
    (at least 1e-8). Rows run along the last dimension: with stacked seeds, ``(S, N)`` labels give
    ``(S,)`` sums and means. ``finite`` is None when every row's features and logits are finite,
    else the ``(..., N)`` bool mask of those that are; ``poison`` is then what :meth:`output` adds
    to the loss (see :func:`_poison`).
    """

    label: Tensor
    weight: Tensor | None
    count: Tensor | float
    finite: Tensor | None = None
    poison: Tensor | None = None

    def safe(self, values: Tensor) -> Tensor:
        """``values`` (``(..., N, k)``) with the rows that are not finite set to 0; as is when all are."""
        if self.finite is None:
            return values
        return torch.where(self.finite.unsqueeze(-1), values, 0.0)

    def counted(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """The features and labels of the rows that count (one seed's ``(N, d)`` features).

        The features are selected through autograd, so the gradient of the selected rows flows back to
        the batch and the other rows get zero.
        """
        if self.weight is None:
            return features, self.label
        position = self.weight.nonzero().squeeze(-1)
        return features.index_select(0, position), self.label.index_select(0, position)

    def output(self, loss: Tensor, logits: Tensor | None, terms: dict[str, Tensor]) -> MethodOutput:
        """The step's :class:`MethodOutput`.

        When a row that would count (its target is not ``ignore_index``) was not finite, the loss
        is NaN (per seed) and that row's features get a NaN gradient (see :func:`_poison`); the
        logits of every row that was not finite are NaN.
        """
        if self.finite is not None:
            loss = loss + self.poison.to(loss.dtype)
            if logits is not None:
                logits = logits.masked_fill(~self.finite.unsqueeze(-1), float("nan"))
        return MethodOutput(loss=loss, logits=logits, terms=terms)

    def sum(self, values: Tensor) -> Tensor:
        """Sum of per-row ``values`` over the rows that count."""
        return values.sum(-1) if self.weight is None else (values * self.weight).sum(-1)

    def mean(self, values: Tensor) -> Tensor:
        """Mean of per-row ``values`` over the rows that count (0 when none does)."""
        return self.sum(values) / self.count

    def scale(self) -> Tensor | float:
        """Per-row factor that turns a sum over rows into :meth:`mean`: ``weight / count``."""
        if self.weight is None:
            return 1.0 / self.count
        count = self.count.unsqueeze(-1) if isinstance(self.count, Tensor) else self.count
        return (self.weight / count).unsqueeze(-1)
