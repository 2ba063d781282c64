"""Heatmaps of label similarity (Sun et al. 2017, Figure 3).

A label's similarity to itself (the diagonal, e.g. 0.3 in a learned softmax(E)) is several times
any similarity between two labels (0.06-0.12): on one colour scale the off-diagonal structure,
which is what the picture is for, would fill the darkest third of the colormap. So the diagonal
is drawn in grey, its values written in the cells, and the colours span the off-diagonal range.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import Colormap
from torch import Tensor

from .plotting import plt, save_figure

#: Where the diagonal's cells are drawn: a neutral grey, off the viridis scale.
DIAGONAL_COLOUR = "0.82"
#: Up to this many labels the diagonal's values are written in its cells.
ANNOTATED_LABELS = 30


def off_diagonal(similarity: Tensor) -> np.ma.MaskedArray:
    """``similarity`` as a float array with its diagonal masked."""
    values = similarity.float().cpu().numpy()
    return np.ma.masked_array(values, mask=np.eye(*values.shape, dtype=bool))


def colour_limits(similarity: Tensor) -> tuple[float, float]:
    """The colour scale of the heatmap: the off-diagonal minimum and maximum (the whole matrix's
    when there is no off-diagonal entry); never an empty range."""
    masked = off_diagonal(similarity)
    values = masked.compressed() if masked.count() else masked.data.ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:  # a constant off-diagonal: still a valid colour scale
        high = low + max(abs(low), 1.0) * 1e-6
    return low, high


def tick_labels(ticks: list[float]) -> list[str]:
    """Each tick written out in full, to as few digits as keep it within a thousandth of the ticks'
    spacing of its value: ``0.096``, ``0.100``; below 0.001, with its exponent: ``3.5e-5``.

    A colour bar's own labels put a shared multiplier or offset (``1e-5``) above the bar, where
    it runs into the title of a narrow heatmap (three classes); these need none.
    """
    if not ticks:
        return []
    gaps = [b - a for a, b in zip(ticks, ticks[1:]) if b > a]
    tolerance = (min(gaps) if gaps else abs(ticks[0]) or 1.0) * 1e-3
    kind = "g" if max(abs(tick) for tick in ticks) < 1e-3 else "f"
    for digits in range(1 if kind == "g" else 0, 18):
        labels = [f"{tick:.{digits}{kind}}" for tick in ticks]
        if all(abs(float(label) - tick) <= tolerance for label, tick in zip(labels, ticks)):
            break
    # Python writes 3.5e-05; the exponent's leading zero only widens the bar's labels.
    return [re.sub(r"e([+-])0(\d)", r"e\1\2", label) for label in labels]


def draw_similarity_heatmap(ax: Any, similarity: Tensor, class_names: list[str]) -> Any:
    """Draw ``similarity`` on ``ax``: the off-diagonal on its own colour scale, the diagonal grey
    with its values written in (up to :data:`ANNOTATED_LABELS` labels). Returns the image."""
    masked = off_diagonal(similarity)
    low, high = colour_limits(similarity)
    cmap: Colormap = plt.get_cmap("viridis").with_extremes(bad=DIAGONAL_COLOUR)
    image = ax.imshow(masked, cmap=cmap, vmin=low, vmax=high)
    rows, columns = masked.shape
    if max(rows, columns) <= ANNOTATED_LABELS:
        size = 8 if max(rows, columns) <= 12 else 6
        for i in range(min(rows, columns)):
            ax.text(i, i, f"{masked.data[i, i]:.2f}", ha="center", va="center", fontsize=size, color="0.15")
    ax.set_xticks(range(columns), class_names[:columns], rotation=60, ha="right")
    ax.set_yticks(range(rows), class_names[:rows])
    ax.set_xlabel("soft-label mass on")
    ax.set_ylabel("label")
    return image


def plot_similarity_heatmap(
    similarity: Tensor, class_names: list[str], path: str | Path, title: str = ""
) -> Path:
    """Draw ``similarity`` with class names on both axes and save it to ``path`` (PNG or SVG).

    The colours span the off-diagonal values only; the diagonal is grey and its values are
    written in its cells (the colour bar says so, with the diagonal's range).
    """
    m = similarity.shape[0]
    size = max(4.0, 0.45 * m + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = draw_similarity_heatmap(ax, similarity, class_names)
    if title:
        ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    low_limit, high_limit = image.get_clim()
    ticks = [tick for tick in bar.get_ticks() if low_limit <= tick <= high_limit]
    bar.set_ticks(ticks, labels=tick_labels(ticks))
    diagonal = np.diagonal(image.get_array().data)
    low, high = f"{diagonal.min():.2f}", f"{diagonal.max():.2f}"
    span = low if low == high else f"{low}-{high}"
    bar.set_label(f"similarity, off-diagonal scale\n(diagonal in grey: {span})")
    return save_figure(fig, path)
