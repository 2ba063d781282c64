"""The figures of a multi-label classifier (each example a set of tags), from scikit-learn.

Every figure takes the scores ``(N, K)`` (a tag's probability, or any score that ranks) and the
tag sets as a bool ``(N, K)`` matrix, and returns shares as fractions (0-1, scikit-learn's unit;
:func:`~labelemb.metrics.figures.in_units` records them in percent):

- ``map_macro``: the mean over tags of each tag's average precision, over the tags the split holds
  (a tag no example carries has no precision-recall curve); ``map_micro``: one average precision
  over every (example, tag) pair;
- at a threshold (a tag is predicted where its score reaches it; chosen on dev by
  :func:`dev_threshold`): ``f1_micro`` and ``f1_macro`` (the mean over the tags that are carried
  or predicted, as the single-label macro-F1), ``hamming`` (the share of wrong (example, tag)
  decisions) and ``exact_match`` (the share of examples whose predicted set is their set);
- from the ranking alone: ``lrap`` (label-ranking average precision), ``ranking_loss`` (the share
  of (carried, not carried) tag pairs ranked the wrong way round) and ``coverage_error`` (how far
  down the ranking one must go, on average, to cover every carried tag; at least 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The thresholds :func:`dev_threshold` tries: a probability from 0.01 to 0.99.
THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def tag_figures(scores: Any, tags: Any, threshold: float) -> dict[str, float]:
    """Every figure of the module docstring for ``scores`` and ``tags`` (fractions; the coverage
    error in tags), the decisions at ``threshold``."""
    # lazy: scikit-learn takes seconds to import and only a multi-label evaluation needs it
    from sklearn import metrics

    scores, tags = _as_arrays(scores, tags)
    predicted = scores >= threshold
    carried = tags.any(axis=0)
    decided = carried | predicted.any(axis=0)
    return {
        "map_macro": float(
            metrics.average_precision_score(tags[:, carried], scores[:, carried], average="macro")
        ),
        "map_micro": float(metrics.average_precision_score(tags, scores, average="micro")),
        "f1_micro": float(metrics.f1_score(tags, predicted, average="micro", zero_division=0)),
        "f1_macro": float(
            metrics.f1_score(tags[:, decided], predicted[:, decided], average="macro", zero_division=0)
        ),
        "hamming": float(metrics.hamming_loss(tags, predicted)),
        "exact_match": float(metrics.accuracy_score(tags, predicted)),
        "lrap": float(metrics.label_ranking_average_precision_score(tags, scores)),
        "ranking_loss": float(metrics.label_ranking_loss(tags, scores)),
        "coverage_error": float(metrics.coverage_error(tags, scores)),
    }


def dev_threshold(scores: Any, tags: Any) -> float:
    """The threshold of :data:`THRESHOLDS` with the best micro-F1 on these (dev) scores; the lowest
    of the best where several tie."""
    scores, tags = _as_arrays(scores, tags)
    carried = int(tags.sum())
    best, best_f1 = float(THRESHOLDS[0]), -1.0
    for threshold in THRESHOLDS:
        predicted = scores >= threshold
        hits = int((predicted & tags).sum())
        # micro-F1 = 2 TP / (predicted + carried), computed here once per threshold without
        # scikit-learn's checks: 99 thresholds on a dev split of thousands of rows.
        f1 = 2.0 * hits / max(int(predicted.sum()) + carried, 1)
        if f1 > best_f1:
            best, best_f1 = float(threshold), f1
    return best


def _as_arrays(scores: Any, tags: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    tags = np.asarray(tags.detach().cpu() if hasattr(tags, "detach") else tags).astype(bool)
    if scores.ndim != 2 or scores.shape != tags.shape:
        raise ValueError(
            "multi-label figures need scores and tag sets of one shape (N, K), "
            f"got {scores.shape} and {tags.shape}"
        )
    if not tags.any():
        raise ValueError("no example carries a tag: the multi-label figures need at least one tag carried")
    return scores, tags
