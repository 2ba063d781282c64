"""Gradient accumulation: a method's step taken over micro-batches that add up to one batch.

:class:`MicroBatch` says where a batch lies in its optimiser step; :class:`GradientAccumulation`,
a base of :class:`~labelemb.methods.base.Method`, turns a micro-batch into its share of the step
(:meth:`~GradientAccumulation.micro_batch_loss`, :meth:`~GradientAccumulation.accumulated_loss`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import Tensor

from .multi_hot import is_tag_target
from .processes import per_process_share, world_size
from .rows import MethodOutput


@dataclass(frozen=True)
class MicroBatch:
    """Where a training step's batch lies in its optimiser step, for a trainer that accumulates
    gradients over micro-batches and divides each one's loss by ``divisor`` (Lightning's
    ``accumulate_grad_batches``). An adapter sets it as :attr:`Method.micro_batch` for the step.

    ``position`` is the micro-batch's place in its optimiser step (0: the first), ``count`` how
    many micro-batches the step has (fewer than ``divisor`` in an epoch's short last step).
    """

    position: int
    count: int
    divisor: int


class GradientAccumulation:
    """The micro-batch steps of a :class:`~labelemb.methods.base.Method` (its base): each
    micro-batch's loss scaled so that the micro-batches' gradients add up to one batch's."""

    name: str
    ignore_index: int
    accumulation_caveat: str
    # batch_loss (the step of one whole batch) and parameters() are the Method's.

    def micro_batch_loss(
        self,
        features: Tensor,
        target: Tensor,
        num_items: Tensor | float,
        *,
        index: Tensor | None = None,
        step_start: bool | None = None,
    ) -> MethodOutput:
        """One micro-batch of an optimiser step whose micro-batches (on every process) count
        ``num_items`` rows together: ``L_k = sum_{i in k} l_i / num_items``.

        The micro-batches' gradients then add up to those of the whole batch's mean, however its
        rows fall into micro-batches. That is exact for a loss that is a mean of per-row terms; a
        method with terms of the batch as a whole overrides it (``label_embedding``) or leaves
        them a micro-batch's (``lwal``'s class means, :attr:`accumulation_caveat`).
        ``step_start`` says whether the micro-batch is the first of its optimiser step; None
        leaves it to :meth:`starts_step`. Tag sets (multi-hot targets) are refused for now.
        """
        self._refuse_tag_sets(target)
        out = self.batch_loss(features, target, index=index)
        # The method divided its sum by this count (all processes' over their number, a collective
        # every process reaches here): multiplying by it gives the micro-batch's sum back.
        counted = per_process_share((target != self.ignore_index).sum().to(out.loss.dtype))
        return MethodOutput(out.loss * counted / num_items, out.logits, out.terms)

    def accumulated_loss(
        self, features: Tensor, target: Tensor, micro_batch: MicroBatch, *, index: Tensor | None = None
    ) -> MethodOutput:
        """One micro-batch for a trainer that divides each micro-batch's loss by ``micro_batch.divisor``
        and whose data parallel training averages gradients over the ``P`` processes (Lightning)::

            L_k = divisor * P * micro_batch_loss(num_items = n_k * count)

        with ``n_k`` the micro-batch's counted rows on every process together and ``count`` the
        step's micro-batches (:class:`MicroBatch`). The step's gradient is then that of one
        batch of all its micro-batches, batch-wide terms included, when every micro-batch counts as
        many rows as this one: no micro-batch knows the sizes of those still to come.
        """
        self._refuse_tag_sets(target)
        processes = world_size()
        counted = per_process_share((target != self.ignore_index).sum().to(features.dtype)) * processes
        # A micro-batch whose every row is ignored on every process: a zero loss, not 0 / 0.
        num_items = counted.clamp(min=1) * micro_batch.count
        out = self.micro_batch_loss(
            features, target, num_items, index=index, step_start=micro_batch.position == 0
        )
        return MethodOutput(out.loss * (micro_batch.divisor * processes), out.logits, out.terms)

    def _refuse_tag_sets(self, target: Tensor) -> None:
        # The rows a micro-batch counts are read from class targets (those not ignore_index); a tag
        # set's count is its rows, a rule not written yet, and a wrong count would scale the step.
        if is_tag_target(target):
            raise NotImplementedError(
                f"{self.name or type(self).__name__}: gradient accumulation over micro-batches of "
                "multi-hot targets (tag sets) is not supported yet; train with one batch a step"
            )

    def warn_inexact_accumulation(self, micro_batches: int) -> None:
        """Warns, in one line, when ``micro_batches`` accumulated micro-batches cannot give this
        method the step of one batch of all of them (:attr:`accumulation_caveat`)."""
        if micro_batches > 1 and self.accumulation_caveat:
            warnings.warn(
                f"{self.name or type(self).__name__} under gradient accumulation ({micro_batches} "
                f"micro-batches a step): {self.accumulation_caveat}, so a step is not that of one batch",
                UserWarning,
                stacklevel=2,
            )

    def starts_step(self, step_start: bool | None = None) -> bool:
        """Whether a micro-batch is the first of its optimiser step: ``step_start`` where the caller
        knows, else whether none of the method's parameters holds a gradient (the optimiser's
        ``zero_grad`` has run: a Hugging Face ``Trainer`` zeroes after every step)."""
        if step_start is not None:
            return step_start
        # Smallest first: after a micro-batch whose rows count, a bias's gradient already says so.
        held = sorted((p.grad for p in self.parameters() if p.grad is not None), key=Tensor.numel)
        return not any(bool(grad.any()) for grad in held)
