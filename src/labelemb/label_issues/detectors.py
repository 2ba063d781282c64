"""The detectors of wrong labels, each named, on out-of-sample probabilities: cleanlab's own
functions (an extra, ``pip install "labelemb[label-issues]"``), never written again here.

A detector's score is cleanlab's label quality (:func:`cleanlab.rank.get_label_quality_scores`):
in [0, 1], low where the given label looks wrong. The flagged set is cleanlab's
:func:`cleanlab.filter.find_label_issues` with one of its filters; the estimated number of wrong
rows is :func:`cleanlab.count.num_label_issues`, and the noise matrix is cleanlab's
(:func:`cleanlab.count.estimate_latent`) written as labelemb writes a transition matrix:
``T[i, j]`` = P(given label j | true class i), each row summing to 1 (cleanlab's transposed).

The in-sample detectors of the training dynamics (:mod:`.dynamics`) are named here too, so that
the choice of a ranking is checked in one place."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .folds import LabelIssuesError

#: The detectors, each a cleanlab label quality score (``method=`` of get_label_quality_scores).
DETECTORS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
#: The detectors of the training dynamics of one run on every row (:mod:`.dynamics`), in sample:
#: offered where they are asked for (``dynamics``).
DYNAMICS_DETECTORS = ("aum", "final_margin", "final_loss", "first_learned")
#: Every detector a list can be ranked by (``rank_by``).
RANKINGS = DETECTORS + DYNAMICS_DETECTORS
#: The detector the list is ranked by unless another is asked for (cleanlab's own default).
DEFAULT_DETECTOR = "self_confidence"
#: cleanlab's filters of find_label_issues (``filter_by=``), which choose the flagged rows.
FILTERS = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)
#: The filter of the flagged set unless another is asked for (cleanlab's own default).
DEFAULT_FILTER = "prune_by_noise_rate"
#: The extra that installs cleanlab.
EXTRA = "label-issues"


def cleanlab_part(name: str) -> ModuleType:
    """``cleanlab.<name>``, or one line naming the extra that installs it."""
    try:
        return importlib.import_module(f"cleanlab.{name}")
    except ImportError:
        raise LabelIssuesError(
            f'finding wrong labels needs cleanlab: pip install "labelemb[{EXTRA}]" (or pip install cleanlab)'
        ) from None


@dataclass(frozen=True)
class Detection:
    """What the detectors say of each row: ``scores[detector]`` its label quality (low: likely
    wrong), ``flagged`` the filter's set, ``estimated_wrong`` cleanlab's count of wrong rows and
    ``noise_matrix`` ``T[i, j]`` = P(given j | true i); ``suggested`` the most probable class."""

    scores: dict[str, np.ndarray]
    flagged: np.ndarray
    filter_by: str
    estimated_wrong: int
    noise_matrix: np.ndarray
    suggested: np.ndarray


def check_choices(rank_by: str, filter_by: str, dynamics: bool = False) -> None:
    """Refuse, in one line, a detector or a filter that is not one of :data:`RANKINGS` /
    :data:`FILTERS`, or a detector of the training dynamics where they are not asked for."""
    if rank_by not in RANKINGS:
        raise LabelIssuesError(f"unknown detector {rank_by!r}; known: {', '.join(RANKINGS)}")
    if rank_by in DYNAMICS_DETECTORS and not dynamics:
        raise LabelIssuesError(
            f"detector {rank_by!r} reads the training dynamics: ask for them with --dynamics "
            "(dynamics=True), which trains one more run, on every training row"
        )
    if filter_by not in FILTERS:
        raise LabelIssuesError(f"unknown filter {filter_by!r}; known: {', '.join(FILTERS)}")


def detect(labels: np.ndarray, probabilities: np.ndarray, filter_by: str = DEFAULT_FILTER) -> Detection:
    """Every detector on ``probabilities`` (N, m) (out-of-sample: each row's from a model that did not
    train on it) against the given ``labels`` (N,)."""
    rank, filters, count = cleanlab_part("rank"), cleanlab_part("filter"), cleanlab_part("count")
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    scores = {name: rank.get_label_quality_scores(labels, probabilities, method=name) for name in DETECTORS}
    flagged = filters.find_label_issues(labels, probabilities, filter_by=filter_by)
    joint = count.compute_confident_joint(labels, probabilities)
    _, noise_matrix, _ = count.estimate_latent(joint, labels)
    return Detection(
        scores=scores,
        flagged=np.asarray(flagged, dtype=bool),
        filter_by=filter_by,
        estimated_wrong=int(count.num_label_issues(labels, probabilities)),
        noise_matrix=np.asarray(noise_matrix, dtype=np.float64).T,
        suggested=probabilities.argmax(axis=1),
    )


def ranking(scores: np.ndarray) -> np.ndarray:
    """The rows from the most likely wrong (lowest quality) down; ties kept in row order."""
    return np.argsort(scores, kind="stable")
