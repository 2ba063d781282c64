"""A multi-label run's predictions: each input's set of tags and their probabilities.

The network gives one logit per tag and a tag's probability is its sigmoid, each tag on its own (no
softmax, no temperature). An input's tags are those whose probability reaches a threshold (the
run's, which its checks' decisions took, or one given) or its ``k`` most probable tags, most
probable first. Conformal prediction sets (:mod:`.sets`) are sets of classes of a softmax, and are
refused for such a run with :func:`refuse_tag_sets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .source import PredictError, Trained


@dataclass(frozen=True)
class TagPrediction:
    """One input's predicted tags, most probable first, and each one's probability."""

    tags: tuple[str, ...]
    probabilities: tuple[float, ...]


def tag_probabilities(logits: Tensor) -> Tensor:
    """Each tag's probability, float64: the sigmoid of its logit taken in float32, as the run's checks
    took it, so that a tag at the threshold is decided as the run's recorded figures decided it."""
    return torch.sigmoid(logits.float()).double()


def tag_decision(
    trained: Trained, threshold: float | None, top_k: int | None
) -> tuple[float | None, int | None]:
    """How tags are chosen: ``(threshold, None)`` (the run's threshold where none is given) or
    ``(None, top_k)``; a one-line :class:`PredictError` for a request that cannot be met."""
    if not trained.multi_label:
        if threshold is not None:
            raise PredictError(
                f"{trained.origin} is not a multi-label run, and a threshold chooses a multi-label run's "
                "tags: drop the threshold"
            )
        return None, top_k
    if threshold is not None and top_k is not None:
        raise PredictError(
            "give a threshold (the tags whose probability reaches it) or top k (the k most probable "
            "tags), not both"
        )
    if top_k is not None:
        if top_k < 1:
            raise PredictError(f"top k is a number of tags, 1 or more; got {top_k}")
        return None, top_k
    if threshold is None:
        threshold = trained.tag_threshold
        if threshold is None:
            raise PredictError(
                f"{trained.origin} records no tag threshold at the check read: give one, such as 0.5"
            )
    elif not 0.0 < threshold < 1.0:
        raise PredictError(f"a tag threshold is a probability in (0, 1), such as 0.5; got {threshold}")
    return float(threshold), None


def read_tags(
    probabilities: Tensor, names: list[str], threshold: float | None, top_k: int | None
) -> list[TagPrediction]:
    """Each row's tags (of ``names``, the columns of ``probabilities``): those whose probability
    reaches ``threshold``, or the ``top_k`` most probable; most probable first, ties in tag order."""
    ranked, order = probabilities.sort(dim=-1, descending=True, stable=True)
    if top_k is not None:
        counts = [min(top_k, len(names))] * len(ranked)
    else:
        assert threshold is not None
        # Ranked in descending order: the tags that reach the threshold come first.
        counts = (ranked >= threshold).sum(dim=-1).tolist()
    out = []
    for row, count in enumerate(counts):
        tags = tuple(names[k] for k in order[row, :count].tolist())
        out.append(TagPrediction(tags, tuple(ranked[row, :count].tolist())))
    return out


def agreement(predictions: list[TagPrediction], own: Tensor, names: list[str]) -> str:
    """One line: how the predicted tag sets agree with the inputs' own (bool ``(N, K)``), as the
    run's checks count it: the exact-match share and micro-F1 (%)."""
    index = {name: k for k, name in enumerate(names)}
    predicted = torch.zeros(own.shape, dtype=torch.bool)
    for row, prediction in enumerate(predictions):
        predicted[row, [index[tag] for tag in prediction.tags]] = True
    own = own.bool().cpu()
    exact = float((predicted == own).all(dim=1).double().mean()) if len(own) else 0.0
    hits = int((predicted & own).sum())
    f1 = 2.0 * hits / max(int(predicted.sum()) + int(own.sum()), 1)
    return f"on the inputs' own tags: exact match {100.0 * exact:.2f} %, micro-F1 {100.0 * f1:.2f} %"


def refuse_tag_sets(trained: Trained, why: str) -> None:
    """A one-line :class:`PredictError` where ``trained`` is a multi-label run, saying ``why`` what
    was asked (a single-label classifier's set or figure) does not apply to it."""
    if trained.multi_label:
        raise PredictError(f"{trained.origin} is a multi-label run: {why}")
