"""The layer holding both output layers of :class:`~labelemb.methods.label_embedding.method.LabelEmbedding`.

``o1`` and ``o2`` live in one ``Linear(d, 2m)`` (rows ``[:m]`` are ``o1``, ``[m:]`` are ``o2``),
so one matrix product serves both. Runs made before the merge held two layers: these helpers
draw the same initial weights as those runs did and load their checkpoints.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..base import init_linear


def init_heads(in_features: int, num_classes: int, std: float | None) -> nn.Linear:
    """One layer holding o1 (rows ``[:m]``) and o2 (rows ``[m:]``), initialised as two layers.

    Building and initialising the halves as separate layers, in the order they once were,
    draws the same random numbers as runs made before the merge.
    """
    halves = [nn.Linear(in_features, num_classes) for _ in range(2)]
    for half in halves:
        init_linear(half, std)
    heads = torch.nn.utils.skip_init(nn.Linear, in_features, 2 * num_classes)
    with torch.no_grad():
        heads.weight.copy_(torch.cat([half.weight for half in halves]))
        heads.bias.copy_(torch.cat([half.bias for half in halves]))
    return heads


def merge_separate_heads(state_dict: dict[str, Tensor], prefix: str) -> None:
    """Checkpoints saved before o1 and o2 were merged into ``heads`` hold two layers: merge them."""
    old = [f"{prefix}o{i}.{kind}" for kind in ("weight", "bias") for i in (1, 2)]
    if all(key in state_dict for key in old):
        for kind in ("weight", "bias"):
            state_dict[f"{prefix}heads.{kind}"] = torch.cat(
                [state_dict.pop(f"{prefix}o1.{kind}"), state_dict.pop(f"{prefix}o2.{kind}")]
            )
