"""Learning with adaptive labels (Yu & Verma 2022): labels are the class centroids of the outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from ..stacking import add_to_rows, linear
from .abilities import Stackable
from .base import Method, MethodOutput, Rows, gold
from .processes import is_distributed
from .registry import register


def pairwise_distance(z: Tensor, centres: Tensor) -> Tensor:
    """Euclidean distances ``||z_i - centres_c||_2`` (N x m), as the authors' ``pairwise_dist``.

    The squared distance is floored at 1e-12 before the square root, so an output that equals
    its centre (a class with one example in the batch) has a finite (zero) gradient, not NaN.
    """
    # The expanded square cancels catastrophically in half precision (bf16 keeps ~3 digits of
    # ||z||^2), so it is computed in at least float32 even under autocast.
    dtype = torch.promote_types(z.dtype, torch.float32)
    with torch.autocast(z.device.type, enabled=False):
        z, centres = z.to(dtype), centres.to(dtype)
        sq = z.pow(2).sum(-1, keepdim=True) - 2.0 * z @ centres.transpose(-1, -2)
        sq = sq + centres.pow(2).sum(-1).unsqueeze(-2)
    return sq.clamp(min=1e-12).sqrt()


@register("lwal")
class LearningWithAdaptiveLabels(Stackable, Method):
    """Learning with adaptive labels (LwAL), Yu & Verma (2022), Algorithm 1 and Eq. 1-3.

    A linear head maps features to ``z`` in R^d, ``d = num_classes * dim_factor`` (LwAL10:
    ``dim_factor=10``). Each class has a label vector ``Y_c`` (a buffer, ``Y = eye(m, d)`` at the
    start: one-hot in the first m dimensions, zero in the rest, as the authors' ``tf.eye(n, k)``)::

        p_c  = softmax_c(-||z - Y_c||_2)                                        (Eq. 2)
        L    = H(y, p) + repel * mean_{i,j: y_i != y_j} cos(z_i, z_j)           (Eq. 3, "+rpl": 10)

    Training step ``t`` (0-based, counted in a buffer) is an update step when ``t >= warmup`` and
    ``(t - warmup) % update_every == 0``. In an update step ``Y_c`` becomes the mean ``z`` of the
    batch's class-``c`` examples (Eq. 1; absent classes keep their vector), the distances use
    these fresh centroids *with* their gradient (as the reference code does), and the buffer
    stores them detached. As in Algorithm 1 and the reference code, the repel term is added in
    update steps only (every step with the defaults); evaluation always includes it, as the
    reference's test step does. The step count runs across epochs, as in the reference code.
    Prediction is the nearest label vector: ``logits = -||z - Y_c||_2``.

    Where this differs from the reference code: the repel term here is the mean over the pairs
    with different labels, as the formula above reads; the reference code divides the same sum
    (Eq. 3 sums over different-label pairs only) by all ``N^2`` pairs, so its term is smaller by
    the fraction of different-label pairs: 0.9 for 10 balanced classes, i.e. theirs is about 1.11
    times weaker at the same ``repel`` weight (``repel=9`` here is about their 10, for 10
    balanced classes).

    LwAL is sensitive to the batch size, since each step's label vectors are that batch's class
    means: on Fashion-MNIST with the MLP (3 seeds) we measured 12.70 % test error at batch 100 and
    11.70 % at batch 500, where onehot reached 10.66 % at batch 500. The LwAL paper trains with
    batches of 50 examples per class (500 for 10 classes).

    Rows with non-finite features or outputs ``z`` are left out of the centroids (so of the label
    vectors), of the repel pairs and of the gradients, as ignored rows are; the loss then is NaN
    (see :class:`~labelemb.methods.base.Method`). An empty batch changes no label vector and
    does not count as a step.
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "its label vectors have 10 x m dimensions and are batch means per class: 500,000-wide "
        "outputs over a 50,000-word vocabulary",
        "tags": (
            "its label vectors are the batch's class means and it predicts the nearest one; an "
            "example with several tags belongs to several class means at once, which its loss does "
            "not define"
        ),
    }
    # update_every, the period in steps of the label vectors' update (constructor: >= 1): 1 (Algorithm
    # 1's, every step) inside; the repel term acts on update steps only, so it thins out with the
    # period too. Up to 16 steps, drawn in log: the vectors then lag 15 steps behind the head.
    # dim_factor and repel are what the presets (lwal10, lwal10_rpl) fix; they are not searched.
    search_space: ClassVar[dict[str, Space]] = {"update_every": Space.ints(1, 16, log=True)}
    accumulation_caveat = (
        "its label vectors are each micro-batch's class means, its repel term pairs a micro-batch's "
        "rows and its step count (warmup, update_every) counts micro-batches"
    )

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        dim_factor: int = 1,
        repel: float = 0.0,
        warmup: int = 0,
        update_every: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if dim_factor < 1 or int(dim_factor) != dim_factor:
            raise ValueError(f"dim_factor must be a positive integer, got {dim_factor}")
        if repel < 0:
            raise ValueError(f"repel (the weight of the repel term) must be non-negative, got {repel}")
        if warmup < 0:
            raise ValueError(f"warmup must be a non-negative number of steps, got {warmup}")
        if update_every < 1:
            raise ValueError(f"update_every must be at least 1, got {update_every}")
        self.dim_factor = int(dim_factor)
        self.dim = num_classes * self.dim_factor
        self.repel = float(repel)
        self.warmup = warmup
        self.update_every = update_every
        self.head = self.linear_head(self.dim)
        self.register_buffer("label_vectors", torch.eye(num_classes, self.dim))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def is_update_step(self) -> Tensor:
        """Whether the next training step recomputes the label vectors (a 0-d bool tensor)."""
        since = self.step - self.warmup
        return (since >= 0) & (torch.remainder(since, self.update_every) == 0)

    def head_outputs(self, features: Tensor) -> Tensor:
        return self.embed(features)

    def compute_loss(self, z: Tensor, rows: Rows, features: Tensor, index: Tensor | None) -> MethodOutput:
        if self.training:
            # Decided on the device (no host sync): off-schedule steps compute the centroids too
            # and then keep the old vectors; the extra work is O(N d).
            update = self.is_update_step()
            centres = self._centroids(z, rows, update)
            self.label_vectors.copy_(centres.detach())
            if z.shape[-2]:  # an empty batch is no step
                self.step += 1
        else:
            update, centres = None, self.label_vectors
        logits = -pairwise_distance(z, centres)
        ce = rows.mean(-gold(F.log_softmax(logits, dim=-1), rows.label))
        terms = {"ce": ce}
        loss = ce
        if self.repel > 0:
            repel = self._repel(z, rows)
            terms["repel"] = repel
            weight = self.repel if update is None else self.repel * update.to(z.dtype)
            loss = loss + weight * repel
        return MethodOutput(loss, logits, terms)

    def _centroids(self, z: Tensor, rows: Rows, update: Tensor) -> Tensor:
        """Eq. 1 on this batch where ``update`` holds and the class is present; else the old ``Y``."""
        # In the buffer's precision: half-precision sums would round the kept vectors every step.
        z = z.to(torch.promote_types(z.dtype, self.label_vectors.dtype))
        weight = z.new_ones(z.shape[:-1]) if rows.weight is None else rows.weight.to(z.dtype)
        # Sums and counts in one (m, d + 1) tensor: one collective when distributed.
        packed = torch.cat([z * weight.unsqueeze(-1), weight.unsqueeze(-1)], dim=-1)
        totals = packed.new_zeros(*z.shape[:-2], self.num_classes, self.dim + 1)
        totals = add_to_rows(totals, rows.label, packed)
        if is_distributed():
            # Differentiable sum: each process's loss reaches every process's z through the
            # centroids, so the gradient is that of the global batch, however it is split.
            # lazy: a PyTorch built without distributed support cannot import it (and never gets here).
            import torch.distributed.nn.functional as dist_fn

            totals = dist_fn.all_reduce(totals, op=torch.distributed.ReduceOp.SUM)
        sums, counts = totals[..., :-1], totals[..., -1:].detach()
        fresh = sums / counts.clamp(min=1)
        keep_old = (counts <= 0) | ~update[..., None, None]
        return torch.where(keep_old, self.label_vectors.to(z.dtype), fresh)

    def _repel(self, z: Tensor, rows: Rows) -> Tensor:
        """Mean cosine similarity over ordered pairs of counted rows with different labels."""
        unit = F.normalize(z, dim=-1)
        cosine = unit @ unit.transpose(-1, -2)
        label, weight = rows.label, rows.weight
        differ = (label.unsqueeze(-1) != label.unsqueeze(-2)).to(z.dtype)
        if weight is not None:
            differ = differ * weight.unsqueeze(-1) * weight.unsqueeze(-2)
        return (cosine * differ).sum((-2, -1)) / differ.sum((-2, -1)).clamp(min=1)

    def embed(self, features: Tensor) -> Tensor:
        """The head's output ``z`` in R^d, for one seed or each seed of a stack."""
        return linear(features, self.head.weight, self.head.bias)

    def logits(self, features: Tensor) -> Tensor:
        return -pairwise_distance(self.embed(features), self.label_vectors)

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """The label vectors ``Y`` (m x d)."""
        return self.label_vectors.detach().clone()


# The LwAL paper's named settings (Section "Experiments"): 10x label dimension, and with repel.
register("lwal10", dim_factor=10)(LearningWithAdaptiveLabels)
register("lwal10_rpl", dim_factor=10, repel=10.0)(LearningWithAdaptiveLabels)
