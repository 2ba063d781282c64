"""The loss of the Label Embedding Network (Sun et al. 2017), written as the equation reads.

:class:`~labelemb.methods.label_embedding.LabelEmbedding` computes it through autograd for
stacked seeds and with ``fast_path=False``; its fast path
(:mod:`~labelemb.methods.label_embedding_fast`) and its chunked head
(:mod:`~labelemb.methods.label_embedding_chunked`) compute the same loss with gradients by hand,
and the tests pin both to this function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Rows, gold
from .processes import per_process_share, world_size

#: The loss's five terms, in the order every form of it returns them.
TERMS = ("ce_o1", "soft_o1", "ce_o2", "emb", "penalty")


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
    emb_normaliser: Tensor | None = None,
    penalty_factor: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of :class:`LabelEmbedding` and its five terms, written as the equation reads.

    ``z1 = o1(h)``, ``z2 = o2(sg(h))`` (the caller detaches ``h``), ``e = E[y]``, one row per
    example (a leading seed dimension is allowed). Every ``sg`` of the equation is a ``detach``
    here, so autograd gives exactly the gradients the method defines: ``E`` learns only from
    ``emb``, ``o1`` from ``ce_o1`` and ``soft_o1``, ``o2`` from ``ce_o2`` and ``penalty``.
    ``nlp`` selects the released seq2seq variant (two-sided penalty; ``emb`` and the penalty
    averaged over rows rather than divided by the mask count or summed). Outside ``nlp``,
    ``emb_normaliser`` replaces the mask count (plus 1e-8) ``emb`` is divided by, and
    ``penalty_factor`` the number of processes the penalty is multiplied by: a micro-batch of
    gradient accumulation divides by the whole step's count (see
    :meth:`LabelEmbedding.micro_batch_loss`).
    """
    label = rows.label
    log_p1, log_p2, log_q = (F.log_softmax(z, dim=-1) for z in (z1, z2, e))
    ce_o1 = rows.mean(-gold(log_p1, label))  # H(y, softmax(z1))
    soft_o1 = rows.mean(-(log_q.detach().exp() * log_p1).sum(-1))  # H(sg(softmax(e)), softmax(z1))
    ce_o2 = rows.mean(-gold(log_p2, label))  # H(y, softmax(z2))

    teacher = torch.softmax(z2.detach() / tau, dim=-1)  # sg(softmax(z2 / tau))
    mask = (z2.argmax(-1) == label).to(z2.dtype)  # learn E only where o2 is right
    if rows.weight is not None:
        mask = mask * rows.weight
    per_row_emb = mask * -(teacher * log_q).sum(-1)  # mask_i H(teacher_i, softmax(e_i))
    if nlp:
        emb = per_row_emb.sum(-1) / rows.count
    else:
        if emb_normaliser is None:
            emb_normaliser = per_process_share(mask.sum(-1)) + 1e-8
        emb = per_row_emb.sum(-1) / emb_normaliser

    gap = gold(log_p2, label).exp() - alpha  # softmax(z2)[y] - alpha
    if nlp:
        penalty = rows.mean(gap.abs())
    else:
        # Summed over the global batch: data-parallel training averages gradients over processes.
        penalty = rows.sum(gap.clamp(min=0)) * (world_size() if penalty_factor is None else penalty_factor)

    loss = w_gold * ce_o1 + w_soft * soft_o1 + ce_o2 + emb + penalty
    return loss, dict(zip(TERMS, (ce_o1, soft_o1, ce_o2, emb, penalty)))
