"""Which training rows are wrong: a ranked list of the likely wrong labels of any classification
data set the harness reads (``labelemb label-issues``, :func:`find_label_issues`).

Out of sample by K-fold cross-fitting (:mod:`.folds`, :mod:`.cross_fit`: each fold's run trained on
the other folds through the harness's trainer, scored on its own held-out rows); cleanlab's
detectors on those probabilities (:mod:`.detectors`); the training dynamics of one more run on every
row, where asked for (:mod:`.dynamics`); judged where the truth is known
(:mod:`.judging`); the list, each row named as its file numbers it (:mod:`.listing`); tag sets'
wrong and missing tags, pair by pair (:mod:`.tag_sets`);
:mod:`.finding` is the call that does it all; :mod:`.comparison` makes it for several label
methods and seeds and compares how well each finds the wrong labels, with p."""

from .comparison import LabelIssuesComparison, compare_label_issues
from .detectors import DETECTORS, DYNAMICS_DETECTORS, FILTERS, RANKINGS
from .finding import find_label_issues
from .folds import LabelIssuesError
from .listing import LabelIssues

__all__ = [
    "DETECTORS",
    "DYNAMICS_DETECTORS",
    "FILTERS",
    "RANKINGS",
    "LabelIssues",
    "LabelIssuesComparison",
    "LabelIssuesError",
    "compare_label_issues",
    "find_label_issues",
]
