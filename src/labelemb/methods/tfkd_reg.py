"""Teacher-free knowledge distillation with a hand-made virtual teacher (Tf-KD_reg)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .registry import register


@register("tfkd_reg")
class TfKDReg(Stackable, LinearOutputMethod):
    """Cross-entropy plus distillation from a fixed virtual teacher (Yuan et al. 2020)::

        q_k = correct_prob if k == y else (1 - correct_prob) / (m - 1)
        t   = softmax(q / temperature)
        L   = (1 - alpha) H(y, softmax(z)) + alpha * multiplier * KL(t || softmax(z)) / m

    "Revisiting Knowledge Distillation via Label Smoothing Regularization" (CVPR 2020); "TFReg"
    in the LwAL paper. Defaults are their CIFAR-100 ResNet-18 setting (T = 20, alpha = 0.1,
    multiplier = 100). As in their code (``loss_kd_regularization``), only the teacher is
    softened by the temperature, the student enters as plain ``softmax(z)``, and there is no
    ``T^2`` factor. Their code takes the KL with ``nn.KLDivLoss()``, whose default reduction
    averages over all N x m elements, hence the ``/ m`` above (the paper's loss, a per-example
    KL, does not say how it is reduced over a batch; this follows their code): without it their
    multiplier of 100 would weigh the KL 100 times more on CIFAR-100 than they trained with.
    For a per-example (``batchmean``) KL, pass ``multiplier = m * wanted_weight``.
    The logged ``kl`` term is the plain per-example KL, before the ``/ m``.
    """

    cannot_serve: ClassVar[dict[str, str]] = {
        "tags": (
            "its virtual teacher puts correct_prob on the one gold class and spreads the rest over "
            "the others; a tag set has no one gold class"
        )
    }

    # temperature softens the virtual teacher (constructor: > 0): gold / other = exp(~0.99 / T), so
    # about 0.1 makes it one-hot and 50 all but uniform; 20 (their CIFAR-100 setting) inside. Log.
    # alpha, the distillation term's weight against the cross-entropy (constructor: [0, 1]): 0 is
    # onehot, 0.1 (theirs) inside; at 1 the gold label would be left to the teacher alone.
    # multiplier stays fixed: the KL's weight is alpha * multiplier / m, so alpha already scales it.
    search_space: ClassVar[dict[str, Space]] = {
        "temperature": Space.floats(0.1, 50.0, log=True),
        "alpha": Space.floats(0.0, 0.9),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        temperature: float = 20.0,
        alpha: float = 0.1,
        multiplier: float = 100.0,
        correct_prob: float = 0.99,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if temperature <= 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if multiplier < 0.0:
            raise ValueError(f"multiplier must be >= 0, got {multiplier}")
        if not 0.0 < correct_prob <= 1.0:
            raise ValueError(f"correct_prob must lie in (0, 1], got {correct_prob}")
        self.temperature = temperature
        self.alpha = alpha
        self.multiplier = multiplier
        self.correct_prob = correct_prob
        # The teacher takes only two values per row (gold and the rest), so it is kept as
        # Python floats rather than an (N, m) tensor: no memory traffic and no gradient path.
        m = num_classes
        gold, rest = correct_prob / temperature, (1.0 - correct_prob) / (m - 1) / temperature
        top = max(gold, rest)  # log-sum-exp shift: a small temperature must not overflow exp()
        log_z = top + math.log(math.exp(gold - top) + (m - 1) * math.exp(rest - top))
        self._log_t_gold, self._log_t_rest = gold - log_z, rest - log_z
        self._t_gold, self._t_rest = math.exp(self._log_t_gold), math.exp(self._log_t_rest)
        self._neg_entropy = self._t_gold * self._log_t_gold + (m - 1) * self._t_rest * self._log_t_rest

    def teacher(self, target: Tensor) -> Tensor:
        """The virtual teacher's soft labels ``softmax(q / T)`` as an ``(N, m)`` matrix (for analysis)."""
        table = target.new_full((len(target), self.num_classes), self._t_rest, dtype=self.output.weight.dtype)
        return table.scatter_(1, target.long()[:, None], self._t_gold)

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        log_p_gold = gold(log_p, rows.label)
        ce = rows.mean(-log_p_gold)
        # KL(t || p) = sum_k t_k log t_k - sum_k t_k log p_k, with t_k = t_rest + (t_gold - t_rest)[k == y].
        cross = self._t_rest * log_p.sum(dim=-1) + (self._t_gold - self._t_rest) * log_p_gold
        kl = rows.mean(self._neg_entropy - cross)
        loss = (1.0 - self.alpha) * ce + (self.alpha * self.multiplier / self.num_classes) * kl
        return MethodOutput(loss, logits, {"ce": ce, "kl": kl})
