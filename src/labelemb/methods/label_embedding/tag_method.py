"""What makes :class:`~labelemb.methods.label_embedding.method.LabelEmbedding` train on tag sets: the
loss of :mod:`~labelemb.methods.label_embedding.tags` on its two heads and its full ``E``, through
the closed forms of :mod:`~labelemb.methods.label_embedding.tag_fast` for one model's batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..abilities import MultiHot
from ..multi_hot import rows_divisor
from ..rows import MethodOutput
from .fast import both_heads
from .tag_fast import TagEmbeddingHead
from .tags import TAG_TERMS, tag_embedding_loss, tag_rows


class TagEmbedding(MultiHot):
    """The tag embedding's step: with ``fast_path`` on and one model's features ``(N, d)``, both
    heads as one product and the gradients in closed form (:class:`TagEmbeddingHead`); stacked
    seeds, or ``fast_path=False``, the formula through autograd. The same loss and gradients."""

    #: Whether this method trains on tag sets (its representation is then the tag rows): the run
    #: says so when it builds the method (``tag_sets``), and a step on tag sets sets it.
    trained_on_tags: bool = False

    def tag_outputs(self, features: Tensor) -> Any:
        """``[z1, z2]`` ``(N, 2K)`` outside autograd on the fast path (its gradients are by hand);
        else ``z1 = o1(h)`` and ``z2 = o2(sg(h))`` through autograd."""
        method: Any = self
        if method.fast_path and features.dim() == 2:
            return both_heads(features, method.heads.weight, method.heads.bias)
        return method._both_outputs(features)

    def tag_loss(self, outputs: Any, tags: Tensor, features: Tensor) -> MethodOutput:
        method: Any = self
        if method.compressed_dim is not None or method.variant == "nlp":
            raise ValueError(
                "label_embedding learns a full K x K tag embedding on tag sets: variant nlp and "
                "compressed_dim are for a vocabulary's single labels; set compressed_dim: null and "
                "variant: released (or paper)"
            )
        w_gold, w_soft = method.loss_weights()
        settings = {"w_gold": w_gold, "w_soft": w_soft, "tau": method.tau, "alpha": method.alpha}
        if isinstance(outputs, Tensor):
            divisor = rows_divisor(features.shape[0], features)
            w, b = method.heads.weight, method.heads.bias
            fused = method.fast_path == "fused"
            loss, z1, stacked = TagEmbeddingHead.apply(
                features, w, b, outputs, method.embedding, tags, divisor, *settings.values(), fused
            )
            terms = dict(zip(TAG_TERMS, stacked.unbind(-1)))
        else:
            z1 = outputs[0]
            loss, terms = tag_embedding_loss(*outputs, method.embedding, tags, **settings)
        self.trained_on_tags = True
        return MethodOutput(loss, z1, terms)

    @torch.no_grad()
    def tag_representation(self) -> Tensor:
        """``q``: row ``k`` the probability of each tag on an example carrying tag ``k`` (K x K)."""
        return torch.sigmoid(tag_rows(self.embedding)).detach()  # type: ignore[attr-defined]
