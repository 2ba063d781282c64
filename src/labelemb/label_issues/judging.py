"""The detectors judged where the truth is known (noise the harness made, a table's true-label
column): scikit-learn's metrics with a wrong label the positive class.

Per detector: AUROC and AUPRC of its score (low quality ranks first), its precision among the
k most suspected rows, k the true number of wrong rows, and the precision, recall and F1 of its own
flagged set, its k most suspected rows for k cleanlab's estimate of the wrong rows (what a user
without the truth would flag by that detector). Of the filter's flagged set: precision, recall and
F1. Shares in percent. Tag sets are judged by row and by (row, tag) pair (:func:`judge_tags`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from .detectors import Detection, ranking


def precision_at_true_count(wrong: np.ndarray, scores: np.ndarray) -> float:
    """The share of wrong labels among the ``wrong.sum()`` rows of lowest quality, in percent."""
    count = int(wrong.sum())
    if count == 0:
        return float("nan")
    return 100.0 * float(wrong[ranking(scores)[:count]].mean())


def flagged_figures(wrong: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of a ``flagged`` set (bool per row) against ``wrong``, in percent."""
    return {
        "precision": 100.0 * precision_score(wrong, flagged, zero_division=0),
        "recall": 100.0 * recall_score(wrong, flagged, zero_division=0),
        "f1": 100.0 * f1_score(wrong, flagged, zero_division=0),
    }


def lowest(scores: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` rows of lowest score, as a bool per row (ties in row order)."""
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[ranking(scores)[:count]] = True
    return flagged


def judge(wrong: np.ndarray, detection: Detection) -> dict[str, Any]:
    """The figures of each detector and of the flagged set against ``wrong`` (bool per row)."""
    wrong = np.asarray(wrong, dtype=bool)
    both = 0 < wrong.sum() < len(wrong)  # AUROC and AUPRC need wrong and right rows alike
    detectors = {}
    for name, scores in detection.scores.items():
        own = flagged_figures(wrong, lowest(scores, detection.estimated_wrong))
        detectors[name] = {
            "auroc": 100.0 * roc_auc_score(wrong, -scores) if both else float("nan"),
            "auprc": 100.0 * average_precision_score(wrong, -scores) if both else float("nan"),
            "precision_at_true_count": precision_at_true_count(wrong, scores),
            **{f"{key}_at_estimate": value for key, value in own.items()},
        }
    flagged = detection.flagged
    return {
        "wrong": int(wrong.sum()),
        "rows": len(wrong),
        "estimated_wrong": detection.estimated_wrong,
        "flagged": {
            "filter": detection.filter_by,
            "count": int(flagged.sum()),
            **flagged_figures(wrong, flagged),
        },
        "detectors": detectors,
    }


def judge_tags(wrong_pairs: np.ndarray, detection: Any) -> dict[str, Any]:
    """A tag-set search's figures (``detection``, a :class:`~.tag_sets.TagDetection`) against
    ``wrong_pairs`` (bool ``(N, K)``, a tag given but not carried or carried but not given): by
    row (a row is wrong where any of its pairs is) as :func:`judge` gives them, and by (row, tag)
    pair under ``pairs``: the AUROC, AUPRC and precision at the true count of each pair's quality
    by the ranking detector, and the suspected pairs' precision, recall and F1."""
    wrong_pairs = np.asarray(wrong_pairs, dtype=bool)
    judged = judge(wrong_pairs.any(axis=1), detection)
    wrong, quality = wrong_pairs.ravel(), np.asarray(detection.tag_quality, dtype=np.float64).ravel()
    both = 0 < wrong.sum() < len(wrong)
    judged["pairs"] = {
        "wrong": int(wrong.sum()),
        "pairs": len(wrong),
        "auroc": 100.0 * roc_auc_score(wrong, -quality) if both else float("nan"),
        "auprc": 100.0 * average_precision_score(wrong, -quality) if both else float("nan"),
        "precision_at_true_count": precision_at_true_count(wrong, quality),
        "suspected": {
            "count": int(detection.suspected.sum()),
            **flagged_figures(wrong, np.asarray(detection.suspected, dtype=bool).ravel()),
        },
    }
    return judged


def judged_lines(judged: dict[str, Any]) -> list[str]:
    """The judged figures as a few lines for the terminal."""
    flagged = judged["flagged"]
    lines = [
        f"truth known: {judged['wrong']} of {judged['rows']} training {_wrong_ones(judged)}; flagged "
        f"({flagged['filter']}) {flagged['count']}: precision {flagged['precision']:.1f} %, recall "
        f"{flagged['recall']:.1f} %, F1 {flagged['f1']:.1f} %"
    ]
    for name, figures in judged["detectors"].items():
        lines.append(
            f"  {name}: AUROC {figures['auroc']:.1f} %, AUPRC {figures['auprc']:.1f} %, precision at "
            f"the true count {figures['precision_at_true_count']:.1f} %, F1 of its "
            f"{judged['estimated_wrong']} lowest {figures['f1_at_estimate']:.1f} %"
        )
    if "pairs" in judged:
        pairs = judged["pairs"]
        lines.append(
            f"  (row, tag) pairs: {pairs['wrong']} of {pairs['pairs']} wrong; AUROC {pairs['auroc']:.1f} %, "
            f"AUPRC {pairs['auprc']:.1f} %, precision at the true count "
            f"{pairs['precision_at_true_count']:.1f} %; suspected {pairs['suspected']['count']}: precision "
            f"{pairs['suspected']['precision']:.1f} %, recall {pairs['suspected']['recall']:.1f} %, F1 "
            f"{pairs['suspected']['f1']:.1f} %"
        )
    return lines


def _wrong_ones(judged: dict[str, Any]) -> str:
    """What the wrong count counts: labels, or rows whose tag set is wrong (tag sets)."""
    return "rows carry a wrong tag set" if "pairs" in judged else "labels are wrong"
