"""The multi-hot path of a step: a batch whose target is a tag set per row.

A multi-label batch's target is a ``torch.bool`` tensor ``(N, K)`` (stacked seeds: ``(S, N, K)``),
True where row ``n`` carries tag ``k``, ``K`` the method's ``num_classes``. ``Method.forward`` sends
such a target here (:func:`tag_step`): a method without the
:class:`~labelemb.methods.abilities.MultiHot` ability refuses it with its reason; one with it has
the target's shape checked, runs its head (``tag_outputs``) and hands the outputs to its ``tag_loss``.

What every tag loss shares is here too: the per-tag binary cross-entropy against any target in
[0, 1] (:func:`tag_bce`), the log-probability of each tag's truth (:func:`log_p_true`), and the
reduction, summed over the tags and averaged over the rows (:func:`tag_mean`).

Nothing here reads a device value on the host: the checks are of shapes alone, so a step never
waits for the device, whether the method checks its batches (``check_batches``) or trusts them.
Every row counts (a tag set has no ``ignore_index``), and a non-finite feature or logit makes the
loss non-finite, for the loop (or an AMP ``GradScaler``) to see. The head runs on the whole batch
at once: a chunked head (:class:`~labelemb.methods.abilities.Chunked`) is for single-label rows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .abilities import MultiHot
from .inputs import check_features
from .processes import is_distributed, per_process_share
from .rows import MethodOutput

#: Why a method without the ability, and without a reason of its own, refuses tag sets.
NOT_OPTED_IN = "it has not opted in to multi-hot targets (labelemb.methods.abilities.MultiHot)"


def tags_reason(method: Any) -> str:
    """Why ``method`` (an instance or a class) does not train on tag sets: its own ``cannot_serve``
    reason, or that it never opted in."""
    return method.cannot_serve.get("tags") or NOT_OPTED_IN


def is_tag_target(target: Tensor) -> bool:
    """Whether ``target`` is a batch of tag sets (bool) rather than class indices."""
    return target.dtype == torch.bool


def tag_step(method: Any, features: Tensor, tags: Tensor) -> MethodOutput:
    """The step of ``method`` on a batch of tag sets: the shapes checked, its head run on the
    features and its ``tag_loss`` called; the terms come back detached."""
    name = method.name or type(method).__name__
    if not isinstance(method, MultiHot):
        raise TypeError(
            f"method {name!r} cannot train on multi-hot targets (a bool tag set per row): "
            f"{tags_reason(method)}"
        )
    check_tag_shapes(method, features, tags)
    step = method.tag_loss(method.tag_outputs(features), tags, features)
    terms = {key: value.detach() for key, value in step.terms.items()}
    return MethodOutput(step.loss, step.logits, terms)


def check_tag_shapes(method: Any, features: Tensor, tags: Tensor) -> None:
    """A readable error for tag sets whose shape does not fit the features and the method.

    ``tags`` must be ``features.shape[:-1] + (num_classes,)``: as many rows as the features (each
    seed's, stacked) and one column per tag. Shapes alone: no value is read.
    """
    check_features(method, features)
    rows = tuple(features.shape[:-1])
    expected = (*rows, method.num_classes)
    if tags.dim() != features.dim():
        raise ValueError(
            f"multi-hot targets must have shape {expected} (a bool tag set of num_classes="
            f"{method.num_classes} per row), got {tuple(tags.shape)}"
        )
    if tuple(tags.shape[:-1]) != rows:
        raise ValueError(
            f"multi-hot targets must have one row per feature row, shape {expected}, got "
            f"{tuple(tags.shape)}: {tuple(tags.shape[:-1])} rows against the features' {rows}"
        )
    if tags.shape[-1] != method.num_classes:
        raise ValueError(
            f"multi-hot targets have {tags.shape[-1]} tags a row but the method was built with "
            f"num_classes={method.num_classes}: tags must have shape {expected}"
        )


def tag_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Each tag's binary cross-entropy ``-[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))]`` against
    ``target`` in [0, 1] (a tag set, or a smoothed one), ``(..., N, K)``; stable in the tails."""
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")


def log_p_true(logits: Tensor, tags: Tensor) -> Tensor:
    """``log p_t`` of each tag, ``p_t`` the probability the network gives the tag's truth:
    ``sigmoid(z)`` where the row carries the tag, ``1 - sigmoid(z) = sigmoid(-z)`` where not."""
    return F.logsigmoid(torch.where(tags, logits, -logits))


def tag_mean(per_tag: Tensor) -> Tensor:
    """Per-tag values ``(..., N, K)`` summed over the tags and averaged over the rows: ``(...,)``,
    a loss per seed when stacked.

    The rows' count comes from the shape (no host read); an empty batch gives 0, still connected to
    the graph. Under torchrun the count is every process's share (as a class batch's), so that
    data parallel training's averaged gradients are those of the whole batch's mean.
    """
    return per_tag.sum((-2, -1)) / rows_divisor(per_tag.shape[-2], per_tag)


def rows_divisor(rows: int, like: Tensor) -> Tensor | float:
    """What :func:`tag_mean` divides a batch of ``rows`` rows' sum by: the count, at least 1; under
    torchrun every process's share (a tensor on ``like``'s device)."""
    if is_distributed():
        return per_process_share(like.new_tensor(float(rows))).clamp(min=1.0)
    return float(max(rows, 1))
