"""Online label smoothing (Zhang et al. 2021): class-level soft labels from last epoch's hits."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from ..stacking import add_to_rows, rows_of
from .abilities import EpochState, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .processes import is_distributed
from .registry import register


@register("ols")
class OnlineLabelSmoothing(Stackable, EpochState, LinearOutputMethod):
    """Online label smoothing, Zhang et al. (2021), "Delving Deep into Label Smoothing" (IEEE TIP).

    With ``p = softmax(W h + b)`` and a soft-label matrix ``S`` (m x m)::

        L = (1 - alpha) H(y, p) + alpha H(S[y], p)            (alpha = 0.5: the paper's 0.5 / 0.5)

    During each training epoch every example the head classifies correctly adds ``sg(p)`` to
    ``acc[y]`` and 1 to ``cnt[y]``; :meth:`on_epoch_end` sets ``S[c] = acc[c] / cnt[c]`` (the
    uniform row ``1/m`` for a class with no correct example) and resets ``acc`` and ``cnt``.

    The authors released two versions; this follows their CIFAR script (``cifar/scripts/``):
    ``S`` starts at zero (in the first epoch the soft term is 0 and the loss is
    ``(1 - alpha) H(y, p)``) and the two terms weigh 0.5 and 0.5. Their later, cleaned solver for
    the fine-grained experiments (``fine-grained/solver.py``) differs in three ways, none of which
    is implemented here: ``S`` starts uniform (``1/m`` everywhere), the two terms weigh 1 and 1,
    and a row of ``S`` whose largest entry has reached 0.88 is frozen (no longer updated; their
    comment: better for fine-grained classification, not for ImageNet or CIFAR).

    Evaluation (``module.eval()``) never changes ``S``, ``acc`` or ``cnt``; all three are
    buffers, so a checkpoint resumes mid-epoch exactly. Rows with non-finite features or logits
    are left out of ``acc`` and ``cnt`` and of the gradients, as ignored rows are; the loss then
    is NaN (see :class:`~labelemb.methods.base.Method`).
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "its soft labels are an m x m matrix of class statistics: V x V over a vocabulary "
        "(10 GB at 50,000 words)",
        "tags": (
            "its soft target is a distribution over one label's classes (OLS averages softmax outputs "
            "per gold class); a tag set has no one gold class"
        ),
    }
    # alpha, the soft term's weight (constructor: [0, 1]): 0 is onehot, 0.5 (the paper's CIFAR
    # script) inside; at 1 the first epoch, whose S is zero, would have a zero loss and train nothing.
    search_space: ClassVar[dict[str, Space]] = {"alpha": Space.floats(0.0, 0.9)}

    def __init__(self, in_features: int, num_classes: int, *, alpha: float = 0.5, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha (the weight of the soft term) must lie in [0, 1], got {alpha}")
        self.alpha = alpha
        self.register_buffer("soft_labels", torch.zeros(num_classes, num_classes))
        self.register_buffer("acc", torch.zeros(num_classes, num_classes))
        # Integer counts stay exact however long the epoch and whatever dtype the module is cast to.
        self.register_buffer("cnt", torch.zeros(num_classes, dtype=torch.int64))

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        ce = -gold(log_p, rows.label)
        soft = -(rows_of(self.soft_labels, rows.label).to(log_p.dtype) * log_p).sum(-1)
        ce_mean, soft_mean = rows.mean(ce), rows.mean(soft)
        loss = (1.0 - self.alpha) * ce_mean + self.alpha * soft_mean
        if self.training:
            self._accumulate(logits.detach(), log_p.detach(), rows.label, rows.weight)
        return MethodOutput(loss, logits, {"ce": ce_mean, "soft": soft_mean})

    @torch.no_grad()
    def _accumulate(self, logits: Tensor, log_p: Tensor, label: Tensor, weight: Tensor | None) -> None:
        correct = logits.argmax(-1) == label
        if weight is not None:  # ignored rows carry label 0 and must not count for class 0
            correct &= weight > 0
        add_to_rows(
            self.acc, label, log_p.exp().to(self.acc.dtype) * correct.unsqueeze(-1).to(self.acc.dtype)
        )
        add_to_rows(self.cnt, label, correct.to(self.cnt.dtype))

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """``S[c] = acc[c] / cnt[c]`` (uniform where ``cnt[c] = 0``), then reset ``acc`` and ``cnt``."""
        acc, cnt = self.acc, self.cnt.to(self.acc.dtype)
        if is_distributed():
            # One collective: every process must see the same S whatever share of the data it saw.
            packed = torch.cat([acc, cnt.unsqueeze(-1)], dim=-1)
            torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.SUM)
            acc, cnt = packed[..., :-1], packed[..., -1]
        uniform = torch.full_like(acc, 1.0 / self.num_classes)
        fresh = torch.where(cnt.unsqueeze(-1) > 0, acc / cnt.clamp(min=1).unsqueeze(-1), uniform)
        self.soft_labels.copy_(fresh)
        self.acc.zero_()
        self.cnt.zero_()

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """The soft-label matrix ``S`` (m x m) in use this epoch; row ``c`` is class ``c``'s target."""
        return self.soft_labels.detach().clone()
