"""Wrong and missing tags in tag sets (bool (N, K) labels): each (row, tag) pair's given presence
against its out-of-sample probability, through cleanlab's own multi-label functions
(:mod:`cleanlab.multilabel_classification`), never written again here.

A row's score is cleanlab's multi-label label quality
(:func:`~cleanlab.multilabel_classification.rank.get_label_quality_scores`, one per detector: low
where some tag of the row looks wrong or missing); a pair's is its per-tag quality
(``get_label_quality_scores_per_class``). The flagged rows are cleanlab's multi-label
``find_label_issues`` with the chosen filter; the suspected pairs are its
``find_multilabel_issues_per_class``: a suspected pair whose tag is given is a tag likely wrong,
one whose tag is not given a tag likely missing. The estimated number of rows with a wrong or
missing tag is :func:`cleanlab.count.num_label_issues` (``multi_label=True``); each tag's noise is
cleanlab's (:func:`cleanlab.count.estimate_latent` on that tag's one-vs-rest confident joint):
P(not given | the row carries it) and P(given | the row does not)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.origins import RowOrigins
from .detectors import DETECTORS, cleanlab_part, ranking

#: Each tag's two noise rates, the columns of :attr:`TagDetection.tag_noise`.
TAG_NOISE = ("missing", "wrong")
#: The threshold of a tag's probability where a fold run records none.
PLAIN_THRESHOLD = 0.5


@dataclass(frozen=True)
class TagDetection:
    """What cleanlab says of each row and (row, tag) pair: ``scores[detector]`` each row's label
    quality (low: some tag likely wrong or missing), ``tag_quality`` (N, K) each pair's quality by
    the ranking detector, ``flagged`` the filter's rows, ``suspected`` (N, K) its pairs,
    ``estimated_wrong`` the estimated rows with a wrong or missing tag and ``tag_noise`` (K, 2)
    each tag's P(not given | carried) and P(given | not carried)."""

    scores: dict[str, np.ndarray]
    tag_quality: np.ndarray
    flagged: np.ndarray
    suspected: np.ndarray
    filter_by: str
    estimated_wrong: int
    tag_noise: np.ndarray


def tag_lists(tags: np.ndarray) -> list[list[int]]:
    """Tag sets (N, K) as cleanlab reads them: each row's list of tag ids."""
    return [np.flatnonzero(row).tolist() for row in np.asarray(tags, dtype=bool)]


def detect_tags(tags: np.ndarray, probabilities: np.ndarray, filter_by: str, rank_by: str) -> TagDetection:
    """cleanlab's multi-label detectors on ``probabilities`` (N, K) (each tag's own, out of sample)
    against the given ``tags`` (N, K bool); ``rank_by`` chooses the per-tag quality kept."""
    rank = cleanlab_part("multilabel_classification.rank")
    filters = cleanlab_part("multilabel_classification.filter")
    count = cleanlab_part("count")
    given = np.asarray(tags, dtype=bool)
    labels, probabilities = tag_lists(given), np.asarray(probabilities, dtype=np.float64)
    scores = {name: rank.get_label_quality_scores(labels, probabilities, method=name) for name in DETECTORS}
    per_tag = rank.get_label_quality_scores_per_class(labels, probabilities, method=rank_by)
    # n_jobs=1: cleanlab's worker pool costs more than it saves on two cores (and gives the same sets).
    flagged = filters.find_label_issues(labels, probabilities, filter_by=filter_by, n_jobs=1)
    suspected = filters.find_multilabel_issues_per_class(labels, probabilities, filter_by=filter_by, n_jobs=1)
    joint = count.compute_confident_joint(labels, probabilities, multi_label=True)
    return TagDetection(
        scores=scores,
        tag_quality=np.asarray(per_tag, dtype=np.float64).reshape(given.shape),
        flagged=np.asarray(flagged, dtype=bool),
        suspected=np.asarray(suspected, dtype=bool).reshape(given.shape),
        filter_by=filter_by,
        estimated_wrong=estimated_rows(count, labels, probabilities),
        tag_noise=tag_noise(count, joint, given),
    )


def estimated_rows(count: Any, labels: list[list[int]], probabilities: np.ndarray) -> int:
    """cleanlab's estimate of the rows with a wrong or missing tag."""
    with warnings.catch_warnings():
        # cleanlab's count calls its own deprecated multi_label path inside; the user cannot act on it.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="cleanlab")
        return int(count.num_label_issues(labels, probabilities, multi_label=True))


def tag_noise(count: Any, joint: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Each tag's (K, 2) noise rates from its one-vs-rest confident joint (cleanlab's
    ``[given][true]``, 1 = carried): P(not given | carried), P(given | not carried)."""
    rates = np.zeros((given.shape[1], 2), dtype=np.float64)
    for k in range(given.shape[1]):
        _, noise, _ = count.estimate_latent(joint[k], given[:, k].astype(np.int64))
        rates[k] = noise[0][1], noise[1][0]
    return rates


def _names(names: list[str], picked: np.ndarray, order: np.ndarray) -> list[str]:
    """The names of the ``picked`` tags (bool per tag), in ``order`` (tag ids)."""
    return [names[int(k)] for k in order if picked[k]]


def listed_tag_rows(
    detection: TagDetection,
    tags: np.ndarray,
    probabilities: np.ndarray,
    thresholds: np.ndarray | None,
    origins: RowOrigins,
    tag_names: list[str],
    fold: np.ndarray,
    rank_by: str,
    clean: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Every training row as the list holds it, ranked by ``rank_by``'s score (lowest first): its
    given tags, the suspected ones (given: likely wrong; not given: likely missing; each the least
    likely first), the tags its fold model predicts (at its run's threshold) and the scores; where
    the ``clean`` tag sets are known (N, K), its true tags and whether its given ones differ."""
    given = np.asarray(tags, dtype=bool)
    cut = (
        np.full(len(given), PLAIN_THRESHOLD)
        if thresholds is None
        else np.where(np.isnan(thresholds), PLAIN_THRESHOLD, thresholds)
    )
    others = [name for name in detection.scores if name != rank_by]
    rows = []
    for rank, i in enumerate(ranking(detection.scores[rank_by]), start=1):
        doubt = np.argsort(detection.tag_quality[i], kind="stable")
        likely = np.argsort(-probabilities[i], kind="stable")
        rows.append(
            {
                "rank": rank,
                "file": origins.file(int(i)),
                "row": origins.row(int(i)),
                "given_tags": _names(tag_names, given[i], np.arange(given.shape[1])),
                "suspected_wrong": _names(tag_names, detection.suspected[i] & given[i], doubt),
                "suspected_missing": _names(tag_names, detection.suspected[i] & ~given[i], doubt),
                "suggested_tags": _names(tag_names, probabilities[i] >= cut[i], likely),
                "score": float(detection.scores[rank_by][i]),
                **{name: float(detection.scores[name][i]) for name in others},
                "flagged": bool(detection.flagged[i]),
                "fold": int(fold[i]) + 1,
            }
        )
        if clean is not None:
            truth = np.asarray(clean[i], dtype=bool)
            rows[-1]["true_tags"] = _names(tag_names, truth, np.arange(given.shape[1]))
            rows[-1]["wrong"] = bool((truth != given[i]).any())
    return rows


def tag_summary(detection: TagDetection, tag_names: list[str]) -> dict[str, Any]:
    """What the summary says of tag sets beyond a list's: the suspected pairs and each tag's noise."""
    return {
        "tag_sets": True,
        "suspected_pairs": int(detection.suspected.sum()),
        "tag_noise": {
            name: dict(zip(TAG_NOISE, (float(v) for v in detection.tag_noise[k])))
            for k, name in enumerate(tag_names)
        },
        "tag_noise_reads": "missing = P(not given | the row carries the tag), wrong = P(given | it does not)",
    }
