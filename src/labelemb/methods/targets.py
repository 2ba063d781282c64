"""The base of the methods that only change the target of one linear layer.

Most methods train ``z = W h + b`` as the baseline does and differ only in what each row's loss is
against: a smoothed label, a penalty on the prediction, a focal weight. Such a method writes its
per-row terms as a pure function of the logits and the labels (:meth:`TargetMethod.row_values`)
and each term's weight in the loss (:meth:`~labelemb.methods.base.LinearOutputMethod.row_terms`);
the template does the rest: the mean over the rows that count, the weighted sum, the logged terms.
"""

from __future__ import annotations

from torch import Tensor

from .base import LinearOutputMethod
from .rows import MethodOutput, Rows


class TargetMethod(LinearOutputMethod):
    """A linear output layer whose loss is a weighted sum of per-row terms of the logits::

        L = sum_t w_t mean_i term_t(z_i, y_i)      over the rows i that count

    with ``term_t`` from :meth:`row_values` and ``w_t`` from :meth:`row_terms`. A term of weight 0
    is logged and left out of the loss (focal's cross-entropy beside the focal term). The same two
    hooks, with :meth:`row_loss`, give the chunked head of a method that mixes in
    :class:`~labelemb.methods.abilities.Chunked`.
    """

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        """Each term of every row, ``(..., N)``, by the names of :meth:`row_terms`: a pure function
        of the ``(..., N, m)`` logits and the labels (those of rows that do not count are ignored)."""
        raise NotImplementedError

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        terms = {name: rows.mean(values) for name, values in self.row_values(logits, rows.label).items()}
        return MethodOutput(weighted_sum(terms, self.row_terms()), logits, terms)


def weighted_sum(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """``sum_t w_t terms[t]`` over the terms of nonzero weight, in ``weights``' order; a weight of 1
    adds its term as it is (no multiplication in the graph)."""
    loss = None
    for name, weight in weights.items():
        if weight == 0.0:
            continue
        part = terms[name] if weight == 1.0 else weight * terms[name]
        loss = part if loss is None else loss + part
    if loss is None:
        raise ValueError(f"no term of the loss has a nonzero weight: {weights}")
    return loss
