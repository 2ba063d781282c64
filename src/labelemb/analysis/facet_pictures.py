"""What a run learned about tags that come in facets (``facet::tag``), drawn against the facets.

A heatmap of 233 tags is unreadable; what a reader asks of a tag similarity is whether it groups
the tags as their facets do (:mod:`labelemb.analysis.facets` gives the figures). Two pictures:

- the facet x facet heatmap (:func:`facet_matrix`): entry ``(a, b)`` the mean similarity between
  a tag of facet ``a`` and one of facet ``b``; on the diagonal over pairs of distinct tags, so a
  facet of one tag has none (drawn blank). Similar facets are dark off the diagonal; a
  representation that recovers the facets is darkest on it.
- the tags' average-linkage dendrogram drawn sideways, one line a tag, each name in its facet's
  colour: facets the representation recovers come out as runs of one colour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import dendrogram
from torch import Tensor

from .facets import FACET_SEPARATOR, facet_agreement, facet_of
from .plotting import plt, save_figure
from .representation import LabelRepresentation
from .similarity import label_similarity_rows, write_nearest
from .structure import average_linkage

#: The qualitative colours a facet's tags are written in (cycled past 20 facets).
FACET_COLOURS = "tab20"


def is_faceted(names: list[str], separator: str = FACET_SEPARATOR) -> bool:
    """Whether every name is ``facet::tag`` and the names span two facets or more, one with two
    tags or more (what :func:`~labelemb.analysis.facets.facet_agreement` needs)."""
    if len(names) < 3 or not all(separator in name for name in names):
        return False
    facets = [facet_of(name, separator) for name in names]
    return len(set(facets)) > 1 and len(set(facets)) < len(facets)


def facet_matrix(similarity: Tensor, names: list[str]) -> tuple[list[str], np.ndarray]:
    """The facets (sorted) and the mean similarity between the tags of each pair of facets, the
    diagonal over pairs of distinct tags (NaN for a facet of one tag)."""
    scores = similarity.double().cpu().numpy()
    of_tag = np.array([facet_of(name) for name in names])
    facets = sorted(set(of_tag.tolist()))
    members = [np.flatnonzero(of_tag == facet) for facet in facets]
    matrix = np.full((len(facets), len(facets)), np.nan)
    for a, rows in enumerate(members):
        for b, columns in enumerate(members):
            block = scores[np.ix_(rows, columns)]
            if a != b:
                matrix[a, b] = block.mean()
            elif len(rows) > 1:
                matrix[a, b] = block[~np.eye(len(rows), dtype=bool)].mean()
    return facets, matrix


def plot_facet_heatmap(facets: list[str], matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The facet x facet matrix of :func:`facet_matrix`, a blank cell where it is NaN."""
    size = max(5.0, 0.3 * len(facets) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis")
    ax.set_xticks(range(len(facets)), facets, rotation=90, fontsize=7)
    ax.set_yticks(range(len(facets)), facets, fontsize=7)
    fig.colorbar(image, ax=ax, label="mean similarity of their tags")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_facet_dendrogram(matrix: Tensor, names: list[str], path: str | Path, title: str = "") -> Path:
    """The tags' average-linkage dendrogram (the tree of :func:`~.structure.plot_dendrogram`),
    sideways, each tag's name in its facet's colour."""
    tree = average_linkage(matrix)
    fig, ax = plt.subplots(figsize=(7.0, max(4.0, 0.13 * len(names) + 1.0)))
    dendrogram(tree, labels=names, ax=ax, orientation="left", color_threshold=0, leaf_font_size=5)
    facets = sorted({facet_of(name) for name in names})
    colours = plt.get_cmap(FACET_COLOURS)
    for label in ax.get_yticklabels():
        label.set_color(colours(facets.index(facet_of(label.get_text())) % colours.N))
    ax.set_xlabel("average-linkage distance")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def facet_figures(rep: LabelRepresentation) -> dict[str, float]:
    """:func:`~labelemb.analysis.facets.facet_agreement` of a run's tag similarity."""
    names = list(rep.class_names)
    return facet_agreement(label_similarity_rows(rep.matrix, list(range(len(names)))), names)


def analyze_faceted(
    rep: LabelRepresentation, out_dir: Path, *, top: int = 5, fmt: str = "png"
) -> dict[str, Any]:
    """Every tag's nearest tags (``similar.md``), the facet heatmap (``facets.<fmt>``), the
    dendrogram against the facets (``dendrogram.<fmt>``) and ``analysis.json`` with the figures of
    :func:`~labelemb.analysis.facets.facet_agreement`; returns what ``analysis.json`` holds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(rep.class_names)
    similarity = label_similarity_rows(rep.matrix, list(range(len(names))))
    title = f"{rep.method} seed {rep.seed} ({rep.source})"
    facets, matrix = facet_matrix(similarity, names)
    plot_facet_heatmap(facets, matrix, out_dir / f"facets.{fmt}", title=title)
    plot_facet_dendrogram(rep.matrix, names, out_dir / f"dendrogram.{fmt}", title=title)
    result = {
        **rep.header(names),
        "most_similar": write_nearest(similarity, names, top, out_dir / "similar.md"),
        "facets": {
            **facet_agreement(similarity, names),
            "names": facets,
            "matrix": [[None if np.isnan(v) else float(v) for v in row] for row in matrix],
        },
        "wordnet": {
            "skipped": "tags in facets: the facets, not WordNet, are what the tags are judged against"
        },
    }
    (out_dir / "analysis.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
