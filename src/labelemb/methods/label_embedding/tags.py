"""The label embedding for tag sets: our extension of Sun et al. (2017) to multi-label targets.

The paper learns, for each class, a distribution over the classes from the network's own outputs
and trains the predicting head on it as a soft target. With tag sets each tag ``k`` gets a row of
``K`` probabilities, ``q_k = sigmoid(s (2 E_k - 1))`` with ``s = ln(K - 1)``: how likely every tag
is on an example that carries ``k``. ``E`` starts at the identity, as for one label a row, which
makes ``q_k`` say tag ``k`` with probability ``(K - 1) / K`` and each other tag ``1 / K`` at the
start (the scale ``s`` is what gives that start; it also speeds ``E``'s learning by ``2 s``).

With ``y`` an example's tags (``(N, K)``, 0 or 1), ``z1 = o1(h)`` the predicting head, ``z2 =
o2(sg(h))`` the teaching one, ``BCE(z, t)`` the binary cross-entropy of logits ``z`` against
targets ``t``, each summed over the tags and averaged over the examples::

    t      = sg(sum_{k in y} q_k / |y|)                       the example's soft tag set
    ce_o1  = BCE(z1, y)            soft_o1 = BCE(z1, t)        (Eq. 7, Eq. 13)
    ce_o2  = BCE(z2, y)                                        (Eq. 8)
    emb    = sum_{n, k: y_nk = 1, z2_nk > 0} BCE(s (2 E_k - 1), sg(sigmoid(z2_n / tau)))
             / (their count + 1e-8)                           (Eq. 9-11)
    penalty = mean_n sum_{k in y_n} max(0, sigmoid(z2_nk) - alpha)   (Eq. 12)
    L = w_gold ce_o1 + w_soft soft_o1 + ce_o2 + emb + penalty  (Eq. 14)

As in the paper, ``E_k`` learns only from examples where ``o2`` is right about tag ``k`` (the
mask ``z2_nk > 0``), and the penalty keeps ``o2`` from certainty about the tags an example
carries so that its softened outputs still say which other tags go with them. The soft tag set
is the mean of the carried tags' rows: each carried tag's view of the others, averaged, so that
an example's soft target does not grow with how many tags it carries. The penalty is a mean over
examples (the released single-label code sums it over the batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..multi_hot import tag_mean

#: The terms, in the order :func:`tag_embedding_loss` returns them (those of one label a row).
TAG_TERMS = ("ce_o1", "soft_o1", "ce_o2", "emb", "penalty")


def tag_rows(embedding: Tensor) -> Tensor:
    """The logits of each tag's row ``q_k``: ``s (2 E - 1)`` with ``s = ln(K - 1)``, ``(..., K, K)``."""
    scale = math.log(max(embedding.shape[-1] - 1, 2))
    return scale * (2.0 * embedding - 1.0)


def tag_embedding_loss(
    z1: Tensor,
    z2: Tensor,
    embedding: Tensor,
    tags: Tensor,
    *,
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of the module docstring and its terms; ``z1``, ``z2`` and ``tags`` are
    ``(..., N, K)``, ``embedding`` ``(..., K, K)`` (a leading seed dimension: one loss per seed)."""
    y = tags.to(z1.dtype)
    row_logits = tag_rows(embedding)
    with torch.no_grad():  # the soft target is a constant to the loss (sg): no graph to build
        carried = y.sum(-1, keepdim=True).clamp(min=1.0)
        soft = torch.matmul(y, torch.sigmoid(row_logits)) / carried
    # BCE(z, t) = (1 - t) z - log sigmoid(z): one log-sigmoid of each head serves every target.
    log_p1, log_p2 = F.logsigmoid(z1), F.logsigmoid(z2)
    ce_o1 = tag_mean((1.0 - y) * z1 - log_p1)
    soft_o1 = tag_mean((1.0 - soft) * z1 - log_p1)
    ce_o2 = tag_mean((1.0 - y) * z2 - log_p2)
    emb = _embedding_term(row_logits, z2, y, tau)
    penalty = tag_mean((log_p2.exp() - alpha).clamp(min=0.0) * y)
    loss = w_gold * ce_o1 + w_soft * soft_o1 + ce_o2 + emb + penalty
    return loss, dict(zip(TAG_TERMS, (ce_o1, soft_o1, ce_o2, emb, penalty)))


def _embedding_term(row_logits: Tensor, z2: Tensor, y: Tensor, tau: float) -> Tensor:
    """``emb``: each tag's row learns o2's softened outputs on the examples where o2 is right about it.

    The sum over (example, tag) pairs of a row's BCE is one matrix product: with ``M`` the mask
    and ``S = sg(sigmoid(z2 / tau))``, pair ``(n, k)`` adds ``sum_j (1 - S_nj) r_kj - log
    sigmoid(r_kj)`` (``r`` the rows' logits), so row ``k`` is weighted by its pairs' count ``c_k``
    and by ``(M^T (1 - S))_k``, and the pairs are never formed one by one."""
    with torch.no_grad():  # the mask and o2's softened outputs are constants to E's term (sg)
        mask = y * (z2 > 0).to(y.dtype)
        counts = mask.sum(-2)
        absent = counts.unsqueeze(-1) - torch.matmul(mask.transpose(-1, -2), torch.sigmoid(z2 / tau))
    total = (absent * row_logits - counts.unsqueeze(-1) * F.logsigmoid(row_logits)).sum((-2, -1))
    return total / (counts.sum(-1) + 1e-8)
