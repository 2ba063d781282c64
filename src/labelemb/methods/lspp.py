"""Label Smoothing++ (Chhabra et al.): label smoothing whose non-target mass each class learns."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..search_spaces import Space
from ..stacking import rows_of
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .registry import register
from .rows import one_hot

#: The key under which a finished run saves the targets ``(1 - alpha) I + alpha C`` beside ``C``.
TARGETS_KEY = "targets"


@register("lspp")
class LabelSmoothingPlusPlus(Stackable, LinearOutputMethod):
    """Label Smoothing++, Chhabra, Venkateswara and Li, "Label Smoothing++: Enhanced Label
    Regularization for Training Neural Networks" (BMVC 2024; arXiv 2509.05307), its method as the
    authors' README and released ``lspp.py`` (s-chh/LSPP) give it (the paper's text was not at hand).

    Each class ``c`` learns a distribution ``C[c]`` over the other classes: a learnable m x m
    matrix ``c_matrix`` (zeros at the start: ``C`` uniform, i.e. label smoothing) whose row ``c`` is
    softmaxed over its non-target entries, ``C[c, c] = 0``. The target of an example of class ``y``
    is ``t = (1 - alpha) onehot(y) + alpha C[y]``. The network learns ``t`` by cross-entropy with ``t``
    held fixed; ``C`` learns by the *reverse* cross-entropy, the prediction held fixed (learnt by the
    forward cross-entropy, ``C[y]`` would collapse onto the one class the network scores highest;
    the reverse one's minimum is ``C[y] = p`` renormalised over the non-targets)::

        L = 1/2 H(sg(t), p) + 1/2 H(sg(p), t)
          = 1/2 [-(1 - alpha) log p_y - alpha sum_{k != y} sg(C[y]_k) log p_k]
          + 1/2 [-sg(p_y) log(1 - alpha) - sum_{k != y} sg(p_k) (log alpha + log C[y]_k)]

    The 1/2 and 1/2 and ``alpha = 0.1`` are the authors' released ``lspp.py`` (``LSPP``, their
    ``margin`` argument). Two departures from that file, neither changing what is learnt in
    exact arithmetic: their logarithms are ``log(x + 1e-6)``, here exact (``log_softmax``), and
    their ``c_matrix`` is a K x (K - 1) parameter placed around a zero diagonal, here an m x m
    one whose diagonal is never read (it gets no gradient). Their optimiser also decays ``C``'s
    logits with the network's weight decay (``apply_wd``, on by default): here ``C`` is one of
    the method's parameters, decayed as the trainer decays those.

    The label representation is ``C`` (m x m, rows sum to 1, zero diagonal: the paper's
    C-matrix figures); a finished run also saves the targets ``(1 - alpha) I + alpha C`` as
    ``targets``. Serves class rows only.
    """

    # Written with rows_of, log_softmax and masks built by comparison, which broadcast over a
    # leading seed dimension: tested against per-seed runs.
    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it learns an m x m matrix of target distributions: V x V over a vocabulary "
        "(10 GB at 50,000 words)",
        "tags": (
            "it learns, for each class, a distribution over the other classes to smooth that class's "
            "one-hot target with; a tag set has no one class whose distribution to take"
        ),
    }
    # alpha, the target's mass on the learnt distribution (constructor: (0, 1), since the reverse
    # cross-entropy takes log alpha and log(1 - alpha)): 0.1 (the authors' default) inside; log, as
    # label smoothing's mass acts by its order; above 0.5 the learnt part outweighs the gold class.
    search_space: ClassVar[dict[str, Space]] = {"alpha": Space.floats(0.01, 0.5, log=True)}

    def __init__(self, in_features: int, num_classes: int, *, alpha: float = 0.1, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not 0.0 < alpha < 1.0:
            raise ValueError(
                f"alpha must lie strictly between 0 and 1 (the reverse cross-entropy takes log alpha "
                f"and log(1 - alpha)), got {alpha}"
            )
        self.alpha = alpha
        # Logits of C; row c's diagonal entry is never read. Zeros: C starts uniform over the non-targets.
        self.c_matrix = nn.Parameter(torch.zeros(num_classes, num_classes))

    def log_distribution(self, label: Tensor) -> Tensor:
        """``log C[y]`` for each row's label, ``(..., N, m)``, with 0 (not -inf) at the label itself."""
        is_gold = one_hot(label, self.num_classes)
        logits = rows_of(self.c_matrix, label).masked_fill(is_gold, float("-inf"))
        return F.log_softmax(logits, dim=-1).masked_fill(is_gold, 0.0)

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        log_c = self.log_distribution(rows.label).to(log_p.dtype)
        is_gold = one_hot(rows.label, self.num_classes)
        c = log_c.exp().masked_fill(is_gold, 0.0)
        log_p_gold = gold(log_p, rows.label)
        # H(sg(t), p): the network's cross-entropy against the fixed target.
        forward = -(1.0 - self.alpha) * log_p_gold - self.alpha * (c.detach() * log_p).sum(-1)
        # H(sg(p), t): C's reverse cross-entropy against the fixed prediction.
        p = log_p.detach().exp()
        p_gold = gold(p, rows.label)
        reverse = (
            -p_gold * math.log1p(-self.alpha)
            - (1.0 - p_gold) * math.log(self.alpha)
            - (p.masked_fill(is_gold, 0.0) * log_c).sum(-1)
        )
        ce, rce = rows.mean(forward), rows.mean(reverse)
        loss = 0.5 * ce + 0.5 * rce
        return MethodOutput(loss, logits, {"ce": ce, "rce": rce})

    @torch.no_grad()
    def distribution_matrix(self) -> Tensor:
        """``C`` (m x m): row ``c`` is class ``c``'s learnt distribution over the other classes."""
        labels = torch.arange(self.num_classes, device=self.c_matrix.device)
        c = self.log_distribution(labels).exp()
        return c.masked_fill(one_hot(labels, self.num_classes), 0.0)

    def label_representation(self) -> Tensor:
        """``C`` (m x m, zero diagonal, rows summing to 1)."""
        return self.distribution_matrix().detach().clone()

    def artifacts(self) -> dict[str, Tensor]:
        """``C`` as the representation, and the targets ``(1 - alpha) I + alpha C`` the network learns."""
        tensors = super().artifacts()
        c = tensors["representation"]
        tensors[TARGETS_KEY] = (1.0 - self.alpha) * torch.eye(
            self.num_classes, device=c.device
        ) + self.alpha * c
        return tensors
