"""Zipf's label smoothing (Liang et al. 2022): self-distillation towards a Zipf law over the
non-target classes, ranked by the model's own prediction."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .registry import register
from .rows import one_hot


def min_ranks(scores: Tensor) -> Tensor:
    """Each entry's rank in its row, largest first, ties sharing their smallest rank (``scipy.stats.
    rankdata(-scores, method="min")``): ``1 + #{j: scores_j > scores_i}``, as ``scores``' dtype."""
    m = scores.shape[-1]
    ascending = scores.sort(dim=-1).values
    at_most = torch.searchsorted(ascending, scores.contiguous(), right=True)  # #{j: s_j <= s_i}
    return (m + 1 - at_most).to(scores.dtype)


def zipf_targets(logits: Tensor, label: Tensor, power: float) -> Tensor:
    """The Zipf soft label of each row, ``(..., N, m)``, 0 at the label: ``r_k^-power`` normalised over
    the non-target classes ``k``, with ``r_k`` the rank of ``z_k`` among all ``m`` logits (the label's
    included; ties share their smallest rank). No gradient: a function of the ranks alone."""
    rank = min_ranks(logits.detach())
    mass = rank.pow(-power).masked_fill(one_hot(label, logits.shape[-1]), 0.0)
    return mass / mass.sum(-1, keepdim=True)


@register("zipf_ls")
class ZipfLabelSmoothing(Stackable, LinearOutputMethod):
    """Zipf's label smoothing, Liang et al. (2022), "Efficient One Pass Self-distillation with Zipf's
    Label Smoothing" (ECCV; arXiv 2207.12980), its method as the authors' code
    (megvii-research/zipfls, ``pytorch_zipfls/losses.py``) computes it (the paper's text was not at
    hand here)::

        r_k    = 1 + #{j : z_j > z_k}                     rank of class k by this step's own logits
        t_k    = r_k^-power / sum_{j != y} r_j^-power       for k != y (t_y = 0): a Zipf law, no gradient
        q      = softmax over the non-target logits z_k, k != y
        L      = H(y, softmax(z)) + weight * KL(t || q)

    The target is rebuilt every step from the model's current prediction (one pass: no teacher,
    no stored state). As in the authors' code (``kl_loss``, ``gen_pdf``): the KL is over the
    ``m - 1`` non-target classes, the student side a softmax renormalised over them; the ranks
    are taken among all ``m`` classes (a correctly classified row's non-targets start at rank 2)
    and tied scores share their smallest rank (``rankdata(..., method="min")``). Defaults are
    their CIFAR-100 and ImageNet setting: ``weight`` (their ``loss_lambda``, the paper's lambda)
    0.1, ``power`` 1.

    Departure: the authors rank the classes by *dense* votes, each location of the last feature
    map classified by the output layer and the classes counted by how many locations predict
    them (with extra CE heads on earlier stages weighted ``alpha``). A method here sees only the
    pooled features ``h`` (N, d), so it ranks by the final logits themselves, which is their
    code's ``dense=False`` path.

    Serves class rows and token rows (a sort per row: ``O(N m log m)``).
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its target ranks one softmax's non-target classes and spreads mass over them by Zipf's "
            "law; a tag set has several targets and no one softmax to rank"
        )
    }

    # Written with operations that broadcast over a leading seed dimension (sort, searchsorted,
    # log_softmax, masks built by comparison, Rows.mean): tested against per-seed runs.
    # weight, the KL's weight against the cross-entropy (constructor: >= 0): 0.1 (their CIFAR-100 and
    # ImageNet setting) and 1.0 (TinyImageNet, iNat) inside; log: it matters by orders of magnitude,
    # and above 10 the Zipf shape of the non-targets outweighs learning the gold class.
    # power, the Zipf exponent (constructor: > 0): 1 (theirs, Zipf's law) inside; at 0.25 the target
    # is close to uniform over the non-targets (label smoothing), at 3 nearly all of it on the runner-up.
    search_space: ClassVar[dict[str, Space]] = {
        "weight": Space.floats(0.01, 10.0, log=True),
        "power": Space.floats(0.25, 3.0, log=True),
    }

    def __init__(
        self, in_features: int, num_classes: int, *, weight: float = 0.1, power: float = 1.0, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if weight < 0.0:
            raise ValueError(f"weight (the Zipf KL's weight) must be >= 0, got {weight}")
        if power <= 0.0:
            raise ValueError(f"power (the Zipf exponent) must be > 0, got {power}")
        self.weight = weight
        self.power = power

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        ce = rows.mean(-gold(log_p, rows.label))
        is_gold = one_hot(rows.label, self.num_classes)
        target = zipf_targets(logits, rows.label, self.power)
        # log q over the non-targets: the label's logit at -inf, then its (0-weighted) entry set to 0,
        # so that neither the forward nor the gradient meets 0 * inf.
        log_q = F.log_softmax(logits.masked_fill(is_gold, float("-inf")), dim=-1).masked_fill(is_gold, 0.0)
        kl = rows.mean(torch.special.xlogy(target, target).sum(-1) - (target * log_q).sum(-1))
        loss = ce + self.weight * kl
        return MethodOutput(loss, logits, {"ce": ce, "zipf": kl})
