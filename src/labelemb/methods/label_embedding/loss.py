"""The loss of the Label Embedding Network (Sun et al. 2017, Section 2, Eq. 6-14), as the equation reads.

The paper's equations, and where each is in :func:`label_embedding_loss`:

- Eq. 6: ``z1 = o1(h)``, ``z2 = o2(h)`` (here ``o2(sg(h))``: o2 never changes the backbone); the
  caller passes both.
- Eq. 7: ``H(y, softmax(z1))``, the term ``ce_o1``; Eq. 8: ``H(y, softmax(z2))``, ``ce_o2``.
- Eq. 9-11: ``H(softmax(z2 / tau), softmax(e))`` with ``e = E[y]``, learnt only where o2 is right
  (Appendix A's mask), the term ``emb``: Eq. 10 is the softened ``softmax(z2 / tau)``.
- Eq. 12: ``max(0, softmax(z2)[y] - alpha)``, the term ``penalty`` (``p = 1``; variant nlp:
  ``|softmax(z2)[y] - alpha|``, as released).
- Eq. 13: ``H(sg(softmax(e)), softmax(z1))``, the term ``soft_o1``: o1 learns the soft label.
- Eq. 14: their sum, ``w_gold ce_o1 + w_soft soft_o1 + ce_o2 + emb + penalty`` (the paper's
  weights are 1 and 1; the released code's ``beta`` and ``1 - beta``).

How the terms are normalised (averaged over rows, divided by the mask count, summed over the
global batch) differs between the variants; :func:`normalisation` says it once, and the fast
path (:mod:`~labelemb.methods.label_embedding.fast`), the chunked head
(:mod:`~labelemb.methods.label_embedding.chunked`) and gradient accumulation
(:meth:`~labelemb.methods.label_embedding.method.LabelEmbedding.micro_batch_loss`) read it from
there. :class:`~labelemb.methods.label_embedding.method.LabelEmbedding` computes this function
through autograd for stacked seeds and with ``fast_path=False``; the tests pin the fast and chunked
paths to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import Rows, gold
from ..processes import per_process_share, world_size

#: The loss's five terms, in the order every form of it returns them.
TERMS = ("ce_o1", "soft_o1", "ce_o2", "emb", "penalty")


@dataclass(frozen=True)
class Normalisation:
    """How the terms of one batch are normalised, and the penalty's form (see :func:`normalisation`).

    ``ce_o1``, ``soft_o1`` and ``ce_o2`` are always averaged over the rows that count. ``emb`` (the
    masked sum of ``H(teacher, softmax(e))`` over rows) is divided by ``emb``, or, where that is
    None, by the batch's mask count (all processes') + 1e-8, known once every row has been seen
    (:meth:`emb_divisor`). The penalty's sum over rows is divided by ``penalty_divisor`` and
    multiplied by ``penalty_factor``.
    """

    two_sided: bool
    emb: Tensor | float | None
    #: 1 (the penalty is a sum over rows), or the number of rows that count (a mean over them).
    penalty_divisor: Tensor | float
    penalty_factor: float

    def emb_divisor(self, mask_sum: Callable[[], Tensor]) -> Tensor | float:
        """What the emb term's masked sum is divided by; ``mask_sum`` gives this process's sum of
        the mask, asked for only where it is needed."""
        return per_process_share(mask_sum()) + 1e-8 if self.emb is None else self.emb

    def penalty(self, gap: Tensor) -> Tensor:
        """Each row's penalty (Eq. 12) from ``gap = softmax(z2)[y] - alpha``, before normalising."""
        return gap.abs() if self.two_sided else gap.clamp(min=0)

    def slope(self, gap: Tensor) -> Tensor:
        """The derivative of :meth:`penalty` in ``softmax(z2)[y]``."""
        return gap.sign() if self.two_sided else (gap > 0).to(gap.dtype)

    def scale_penalty(self, values: Tensor) -> Tensor:
        """``values`` (a penalty, its sum or its slope) divided by ``penalty_divisor`` and times
        ``penalty_factor``; a factor or divisor of 1 costs no operation."""
        return self.divide_penalty(self.multiply_penalty(values))

    @property
    def averages_penalty(self) -> bool:
        """Whether the penalty is a mean over the rows that count (``penalty_divisor`` is their number)."""
        return not _is_one(self.penalty_divisor)

    def multiply_penalty(self, values: Tensor) -> Tensor:
        """``values`` times ``penalty_factor`` (no operation for 1)."""
        return values if _is_one(self.penalty_factor) else values * self.penalty_factor

    def divide_penalty(self, values: Tensor) -> Tensor:
        """``values`` divided by ``penalty_divisor`` (no operation for 1)."""
        return values / self.penalty_divisor if self.averages_penalty else values


def _is_one(value: Tensor | float) -> bool:
    return not isinstance(value, Tensor) and value == 1


def normalisation(count: Tensor | float, nlp: bool) -> Normalisation:
    """The normalisation of the loss's terms, the one place where the variants differ in it.

    ``count`` is the number of rows that count (this process's share of them when distributed).
    Variant ``nlp`` (the released seq2seq loss) averages every term over them, ``emb`` and the
    two-sided penalty included. The others divide ``emb`` by the batch's mask count (+ 1e-8) and sum
    the penalty over the global batch: times the number of processes, since data parallel
    training averages the gradients over processes.
    """
    if nlp:
        return Normalisation(two_sided=True, emb=count, penalty_divisor=count, penalty_factor=1)
    return Normalisation(two_sided=False, emb=None, penalty_divisor=1.0, penalty_factor=world_size())


def label_embedding_loss(
    z1: Tensor,
    z2: Tensor,
    e: Tensor,
    rows: Rows,
    *,
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
    nlp: bool,
    normalised: Normalisation | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of :class:`~labelemb.methods.label_embedding.method.LabelEmbedding` and its five
    terms, written as the equation reads (Eq. 6-14).

    ``z1 = o1(h)``, ``z2 = o2(sg(h))`` (the caller detaches ``h``), ``e = E[y]``, one row per
    example (a leading seed dimension is allowed). Every ``sg`` of the equation is a ``detach``
    here, so autograd gives exactly the gradients the method defines: ``E`` learns only from
    ``emb``, ``o1`` from ``ce_o1`` and ``soft_o1``, ``o2`` from ``ce_o2`` and ``penalty``.
    ``nlp`` selects the released seq2seq variant; the terms are normalised as
    ``normalisation(rows.count, nlp)`` says, or as ``normalised`` does: a micro-batch of gradient
    accumulation divides ``emb`` by the whole step's mask count (see
    :meth:`~labelemb.methods.label_embedding.method.LabelEmbedding.micro_batch_loss`).
    """
    normalised = normalised or normalisation(rows.count, nlp)
    label = rows.label
    log_p1, log_p2, log_q = (F.log_softmax(z, dim=-1) for z in (z1, z2, e))
    ce_o1 = rows.mean(-gold(log_p1, label))  # Eq. 7: H(y, softmax(z1))
    soft_o1 = rows.mean(-(log_q.detach().exp() * log_p1).sum(-1))  # Eq. 13: H(sg(softmax(e)), softmax(z1))
    ce_o2 = rows.mean(-gold(log_p2, label))  # Eq. 8: H(y, softmax(z2))

    teacher = torch.softmax(z2.detach() / tau, dim=-1)  # Eq. 10: sg(softmax(z2 / tau))
    mask = (z2.argmax(-1) == label).to(z2.dtype)  # learn E only where o2 is right (Appendix A)
    if rows.weight is not None:
        mask = mask * rows.weight
    per_row_emb = mask * -(teacher * log_q).sum(-1)  # Eq. 11: mask_i H(teacher_i, softmax(e_i))
    emb = per_row_emb.sum(-1) / normalised.emb_divisor(lambda: mask.sum(-1))

    gap = gold(log_p2, label).exp() - alpha  # Eq. 12: softmax(z2)[y] - alpha
    penalty = normalised.scale_penalty(rows.sum(normalised.penalty(gap)))

    loss = w_gold * ce_o1 + w_soft * soft_o1 + ce_o2 + emb + penalty  # Eq. 14
    return loss, dict(zip(TERMS, (ce_o1, soft_o1, ce_o2, emb, penalty)))


def warmup_updates(variant: str, soft_warmup: int | float | None, total_updates: int | None) -> int:
    """The ``nlp`` variant's warm-up in updates (its soft term counts from this update on): a count,
    or a fraction of ``total_updates`` such as 0.3."""
    if soft_warmup is None:
        return 20_000 if variant == "nlp" else 0  # the release's count
    if isinstance(soft_warmup, float) and 0.0 < soft_warmup < 1.0:
        if total_updates is None:
            raise ValueError(
                f"soft_warmup={soft_warmup} is a fraction of training: give total_updates= too (the "
                "trainer does), or give the warm-up as a number of updates"
            )
        return round(soft_warmup * total_updates)
    if soft_warmup < 0 or soft_warmup != int(soft_warmup):
        raise ValueError(
            f"soft_warmup must be a number of updates (a whole number >= 0) or a fraction of training "
            f"between 0 and 1, got {soft_warmup}"
        )
    return int(soft_warmup)
