"""Whether a label similarity recovers a known grouping of the labels: tags in facets.

Debian's debtags are ``facet::tag`` (``implemented-in::python``, ``use::editing``): the facet is a
grouping no method is told. A label representation that learned how tags go together may put a
tag's nearest tags in its own facet more often than chance, and rank same-facet pairs above the
others. Two figures, from any m x m similarity (:func:`~labelemb.analysis.similarity.label_similarity`):

- ``facet_nearest``: the share of tags whose most similar other tag is in the same facet, beside
  ``facet_nearest_chance``, that share for a neighbour drawn at random among the other tags (the
  mean over tags of the other tags of its facet over all other tags);
- ``facet_pair_auroc``: the AUROC of a pair's similarity for telling same-facet pairs from the
  others (scikit-learn's, over every unordered pair, the similarity made symmetric); 50 % is
  chance.

Shares are fractions here; :func:`~labelemb.metrics.figures.in_units` records them in percent.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

#: What parts a tag's facet from its name: ``facet::tag``.
FACET_SEPARATOR = "::"


def facet_of(tag: str, separator: str = FACET_SEPARATOR) -> str:
    """The facet of ``tag``: its name up to the separator (the whole name without one)."""
    return tag.split(separator, 1)[0]


def facet_agreement(
    similarity: Tensor, tags: list[str], separator: str = FACET_SEPARATOR
) -> dict[str, float]:
    """The figures of the module docstring for an m x m ``similarity`` between ``tags``."""
    # lazy: scikit-learn takes seconds to import and only this analysis needs it here
    from sklearn.metrics import roc_auc_score

    scores = similarity.double().cpu().numpy()
    count = len(tags)
    if scores.shape != (count, count) or count < 3:
        raise ValueError(f"a similarity of {scores.shape} for {count} tags: it must be m x m, m >= 3")
    facets = np.array([facet_of(tag, separator) for tag in tags])
    same = facets[:, None] == facets[None, :]
    others = ~np.eye(count, dtype=bool)
    if not (same & others).any() or same[others].all():
        raise ValueError("the tags must hold a facet with two tags or more, and more than one facet")
    nearest = np.where(others, scores, -np.inf).argmax(axis=1)
    symmetric = (scores + scores.T) / 2.0
    upper = np.triu_indices(count, k=1)
    return {
        "facet_nearest": float(same[np.arange(count), nearest].mean()),
        "facet_nearest_chance": float(((same & others).sum(axis=1) / (count - 1)).mean()),
        "facet_pair_auroc": float(roc_auc_score(same[upper], symmetric[upper])),
    }
