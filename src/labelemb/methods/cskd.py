"""Class-wise self-knowledge distillation (Yun et al. 2020): an example learns from another of its class."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .batch_shapes import ClassPairs
from .processes import per_process_share
from .registry import register


@register("cskd")
class ClassWiseSelfKnowledgeDistillation(Stackable, LinearOutputMethod):
    """CS-KD, Yun et al., "Regularizing Class-wise Predictions via Self-knowledge Distillation",
    CVPR 2020 (Section 2, the method; the equation is the paper's total loss, as the authors' code
    computes it).

    Its batches are pairs: rows ``2k`` (the example ``x``, drawn by the epoch's order) and
    ``2k + 1`` (``x'``, another training example of the same class, drawn at random; the training
    loop builds them, :attr:`batch_shape`). With ``P(x; T) = softmax(z(x) / T)``::

        L = (1 / n) sum_k [ H(y_k, P(x_k; 1)) + lambda T^2 KL(sg(P(x'_k; T)) || P(x_k; T)) ]

    over the ``n`` pairs whose ``x`` counts; the partner is only a teacher (no cross-entropy, no
    gradient). A pair whose partner does not count (ignored, not finite) or has another label
    adds no KL term. Defaults ``T = 4``, ``lambda = 1``, as in the paper and the authors' code.

    A batch must have an even number of rows. Only labelemb's training loop builds the pairs;
    a plain loop may call :meth:`~labelemb.methods.batch_shapes.ClassPairs.arrange` for its order.
    """

    batch_shape = ClassPairs()
    serves = frozenset({"class"})
    cannot_serve = {
        "token": "its batches are pairs of training examples of the same class, which the training loop "
        "builds for classification data; the tokens of a sequence are not such examples",
        "tags": (
            "its batches pair an example with another of the same class, which the training loop "
            "draws by class label; an example with a tag set has no one class to pair it by"
        ),
    }
    # temperature T (constructor: > 0): the paper searched {1, 4} and uses 4; below 1 the teacher is
    # sharper than the model's own prediction, past 8 it is close to uniform for the usual logits and
    # T^2 inflates the term. Log: it acts by ratio.
    # lam, lambda (constructor: >= 0): the paper's search of {1, 2, 3, 4} inside; down to 0.25 the term
    # is a light regulariser (0 would be plain cross-entropy). Log: it acts by ratio against the CE.
    search_space: ClassVar[dict[str, Space]] = {
        "temperature": Space.floats(1.0, 8.0, log=True),
        "lam": Space.floats(0.25, 4.0, log=True),
    }

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        temperature: float = 4.0,
        lam: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if lam < 0:
            raise ValueError(f"lam (the weight lambda of the class-wise term) must be >= 0, got {lam}")
        self.temperature = temperature
        self.lam = lam

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        if logits.shape[-2] % 2:
            raise ValueError(
                f"cskd's batch must hold pairs of examples of the same class (rows 2k and 2k + 1), "
                f"got {logits.shape[-2]} rows; labelemb's training loop builds them (batch_shape)"
            )
        weight = rows.weight if rows.weight is not None else logits.new_ones(logits.shape[:-1])
        first, second = weight[..., 0::2], weight[..., 1::2]
        label, partner_label = rows.label[..., 0::2], rows.label[..., 1::2]
        # One collective under torchrun whatever the batch: every process reaches it.
        pairs = per_process_share(first.sum(-1)).clamp(min=1e-8)
        own, partner = logits[..., 0::2, :], logits[..., 1::2, :]
        ce = (-gold(F.log_softmax(own, dim=-1), label) * first).sum(-1) / pairs
        t = self.temperature
        teacher = F.softmax(partner.detach() / t, dim=-1)
        kl_rows = F.kl_div(F.log_softmax(own / t, dim=-1), teacher, reduction="none").sum(-1)
        counts = first * second * (label == partner_label).to(first.dtype)
        kl = t**2 * (kl_rows * counts).sum(-1) / pairs
        loss = ce + self.lam * kl
        return MethodOutput(loss, logits, {"ce": ce, "kl": kl})
