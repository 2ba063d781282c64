"""Progressive self-knowledge distillation (Kim et al. 2021): targets mix in the last prediction."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ..search_spaces import Space
from .abilities import EpochState, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows
from .per_example import TABLE_DTYPES, PerExampleState
from .registry import register
from .rows import one_hot


@register("pskd")
class ProgressiveSelfKnowledgeDistillation(Stackable, EpochState, PerExampleState, LinearOutputMethod):
    """PS-KD, Kim et al., "Self-Knowledge Distillation with Progressive Refinement of Targets",
    ICCV 2021 (Section 3, the method; the equations as the authors' code computes them).

    Each training example ``i`` is trained on a soft target that mixes its one-hot label with the
    model's own prediction ``p_i^{t-1} = softmax(z_i)`` for that example, recorded in the previous
    epoch (the past model as its own teacher). With ``t = 1, ..., T`` the epoch and ``T = epochs``::

        q_i   = (1 - alpha_t) onehot(y_i) + alpha_t p_i^{t-1},      alpha_t = alpha_T t / T
        L     = H(q_i, softmax(z_i))                               (q_i gets no gradient)

    In the first epoch an example has no recorded prediction and its target is its one-hot label
    (the authors' code stores the one-hot label as the prediction "of epoch 0"), as for an example
    not yet seen. The predictions are recorded per example by ``index`` (its position in the
    training set) in :class:`~labelemb.methods.per_example.PerExampleState`'s tables and become the
    teacher at each epoch's end (the authors overwrite one table in place; with every example
    visited once an epoch, that is the same). ``storage`` (default ``"float16"``) is the tables'
    type: half of float32's memory, the targets then within about 5e-4 of float32's (relative);
    ``"float32"`` stores them exactly.

    ``alpha`` is the paper's ``alpha_T`` (0.8, their CIFAR-100 setting). The trainer passes
    ``num_examples`` and ``epochs``, and ``index=`` on every training step. In evaluation without
    ``index`` the loss is the plain cross-entropy.
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it keeps each training example's last prediction (per-example state, indexed by the "
        "example's position); a token row has no such index, and N_tokens x V predictions would not fit",
        "tags": (
            "its target mixes the one-hot label with the example's softmax prediction of the previous "
            "epoch; a tag set has no one-hot label, and its sigmoids are no distribution"
        ),
    }
    # alpha (the paper's alpha_T), the past prediction's weight in the last epoch (constructor: [0, 1]):
    # the paper's 0.8 (CIFAR-100) and 0.3 (ImageNet) inside; near 0 it is plain cross-entropy, past
    # 0.9 a late epoch's target is almost all the model's own last guess (it stops learning the labels).
    search_space: ClassVar[dict[str, Space]] = {"alpha": Space.floats(0.1, 0.9)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_examples: int,
        epochs: int,
        alpha: float = 0.8,
        storage: str = "float16",
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if epochs < 1:
            raise ValueError(f"epochs (the total number of training epochs) must be positive, got {epochs}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(
                f"alpha (the paper's alpha_T, the last epoch's weight) must lie in [0, 1], got {alpha}"
            )
        if storage not in TABLE_DTYPES:
            raise ValueError(f"storage must be one of {', '.join(TABLE_DTYPES)}, got {storage!r}")
        self.epochs = epochs
        self.alpha_T = alpha
        self.storage = storage
        # Epoch stamps and labels fit int32 (half of lwr's int64, kept there for its checkpoints).
        self.init_per_example(num_examples, num_classes, dtype=TABLE_DTYPES[storage], index_dtype=torch.int32)

    def weight(self) -> Tensor:
        """The current ``alpha_t = alpha_T t / T`` (``t`` the 1-based epoch; a 0-d tensor, or one a seed)."""
        return self.alpha_T * (self.epoch + 1).to(torch.float64).clamp(max=self.epochs) / self.epochs

    def per_example_loss(
        self, logits: Tensor, log_p: Tensor, ce: Tensor, rows: Rows, index: Tensor
    ) -> MethodOutput:
        onehot = one_hot(rows.label, self.num_classes).to(log_p.dtype)
        past = self.stored_rows(index, log_p.dtype)
        # A row never recorded is zeros: its teacher is the one-hot label.
        past = torch.where(past.sum(-1, keepdim=True) > 0, past, onehot)
        alpha = self.weight().to(log_p.dtype)[..., None, None]
        target = (1.0 - alpha) * onehot + alpha * past
        loss = rows.mean(-(target * log_p).sum(-1))
        if self.training:
            self.record(log_p.detach().exp(), index, rows.label, rows.weight)
        # The distillation part: the loss less its cross-entropy share.
        return MethodOutput(loss, logits, {"ce": ce, "distill": rows.mean(-(past * log_p).sum(-1))})

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch; this epoch's predictions become the next epoch's teacher."""
        self.take_recordings(self.finished_epoch())

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """Per-class mean of the recorded predictions (m x m); one-hot rows for classes with none yet."""
        return self.class_means(self.num_classes)
