"""Methods against criteria, as ranks: one picture of what a comparison found.

Each criterion is a column of the comparison's rows (:func:`~.compare.comparison_rows`): the
selected test error (or the task's score) and the figures the task reports beside it, the test ECE
raw and after temperature scaling (a tag task's marginal ECE raw and after a temperature per tag),
the AURC of selective classification, each OOD set's AUROC by the max softmax, the error under
shift, and, from further comparisons of the same methods on noisy training labels, the clean-test
error under each. In every column the methods are ranked by their mean over seeds (1: the best;
tied means share the better rank); a method without the figure has no rank there.

A method's mean rank is over the criteria it has a figure for, and the table says how many those
are (its coverage, ``5 of 6``). The rows are ordered by coverage first, then by mean rank: a method
ranked on one figure (one that only a further folder holds) has a mean rank of a single column,
which says little beside one over every criterion, so it cannot head the table.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..metrics.figures import figure
from ..tasks.registry import figure_names, recorded_scoring
from .beyond_error import figure_stem, ood_stem, row_ood_sets
from .compare import comparison_rows, load_runs
from .plotting import Figure, plt, save_figure
from .tag_table import tag_stem


@dataclass(frozen=True)
class Criterion:
    """A column of the picture: its head, the row statistic it reads and which way is better."""

    head: str
    key: str
    higher_is_better: bool = False


@dataclass
class RankTable:
    """Each method's value and rank (1: best; NaN: no figure) under each criterion; methods in
    order of their coverage (how many criteria they are ranked on), then their mean rank."""

    methods: list[str]
    heads: list[str]
    values: np.ndarray  # (methods, criteria)
    ranks: np.ndarray  # (methods, criteria)

    def mean_rank(self, method: str) -> float:
        held = self.ranks[self.methods.index(method)]
        held = held[~np.isnan(held)]
        return float(held.mean()) if held.size else math.nan

    def coverage(self, method: str) -> int:
        """How many criteria ``method`` is ranked on (has a figure for)."""
        return int((~np.isnan(self.ranks[self.methods.index(method)])).sum())

    def ranked_on(self, method: str) -> str:
        """``method``'s coverage in words: ``5 of 6``."""
        return f"{self.coverage(method)} of {len(self.heads)}"

    def markdown(self) -> str:
        """The table as Markdown: each cell ``value (rank)``, then how many criteria the method is
        ranked on and its mean rank over them."""
        lines = ["| method | " + " | ".join(self.heads) + " | ranked on | mean rank |"]
        lines.append("| --- " + "| ---: " * (len(self.heads) + 2) + "|")
        for i, method in enumerate(self.methods):
            cells = [
                "-" if math.isnan(v) else f"{v:.2f} ({r:.0f})" for v, r in zip(self.values[i], self.ranks[i])
            ]
            mean = f"{self.ranked_on(method)} | {self.mean_rank(method):.1f}"
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean} |")
        return "\n".join(lines)


def comparison_criteria(rows: list[dict[str, Any]]) -> list[Criterion]:
    """The criteria the rows of one comparison have a figure for, at least one method each."""
    candidates = [
        score_criterion(rows),
        *reported_criteria(rows),
        Criterion("ECE %", "ece"),
        Criterion("ECE % after T", "ece_scaled"),
        # A tag comparison's calibration: the marginal ECE raw and after a temperature per tag.
        *(Criterion(figure(name).label, tag_stem(name)) for name in ("tag_ece", "tag_ece_per_tag")),
        Criterion("AURC %", figure_stem("aurc")),
        *(
            Criterion(f"OOD AUROC % ({name})", ood_stem(name, "msp_auroc"), True)
            for name in row_ood_sets(rows)
        ),
        Criterion("error under shift %", "shift_error"),
    ]
    return [c for c in candidates if any(_value(row, c) is not None for row in rows)]


def reported_criteria(rows: list[dict[str, Any]]) -> list[Criterion]:
    """The figures a task reports beside its score, where the rows hold them: a text classifier's
    macro-F1, a tag task's micro-F1 and LRAP, ROUGE-1 and -2 beside ROUGE-L; each a score, higher
    better."""
    names = figure_names()
    keys = dict.fromkeys(
        key.removesuffix("_mean")
        for row in rows
        for key in row
        if key.startswith("test_") and key.endswith("_mean")
    )
    return [Criterion(names.get(key, key), key, True) for key in keys]


def score_criterion(rows: list[dict[str, Any]], name: str | None = None) -> Criterion:
    """A comparison's score as a column: headed by its share of wrong training labels where its
    runs trained on noisy labels (their test split is clean: ``error % at 45 % wrong labels``),
    first folder or further one alike; else by ``name`` (a further folder's) or, without one, as
    a table heads it (``test error %``)."""
    scoring = recorded_scoring({"metric": rows[0].get("metric", "test_error")})
    rates = [row["noise_rate_mean"] for row in rows if row.get("noise_rate_mean") is not None]
    if rates:
        score = f"{scoring.score_name} {scoring.unit}".strip()
        return Criterion(
            f"{score} at {np.mean(rates):.0f} % wrong labels", "selected", scoring.higher_is_better
        )
    head = scoring.column() if name is None else f"{scoring.score_name} ({name})"
    return Criterion(head, "selected", scoring.higher_is_better)


def further_criterion(rows: list[dict[str, Any]], name: str) -> Criterion:
    """The one column a further comparison adds: its score (:func:`score_criterion`), headed by
    its share of wrong training labels where its runs trained on noisy labels, else by ``name``."""
    return score_criterion(rows, name)


def experiments_rank_table(folders: list[str | Path], methods: list[str] | None = None) -> RankTable:
    """The ranks of the first comparison's methods on its every criterion, and on the score of each
    further comparison (the same methods on noisy labels, another data set...); only ``methods``,
    ranked among themselves, where given (a ValueError names one no folder has)."""
    columns: list[tuple[Criterion, list[dict[str, Any]]]] = []
    for i, folder in enumerate(folders):
        rows = comparison_rows(load_runs(folder))
        if methods is not None:
            if i == 0 and (absent := sorted(set(methods) - {row["method"] for row in rows})):
                raise ValueError(f"{folder} has no runs of {', '.join(absent)}")
            rows = [row for row in rows if row["method"] in methods]
        if i == 0:
            columns += [(criterion, rows) for criterion in comparison_criteria(rows)]
        else:
            columns.append((further_criterion(rows, Path(folder).name), rows))
    return rank_table(columns)


def _value(row: dict[str, Any], criterion: Criterion) -> float | None:
    value = row.get(f"{criterion.key}_mean")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def rank_table(columns: list[tuple[Criterion, list[dict[str, Any]]]]) -> RankTable:
    """The ranks of the methods under each (criterion, the comparison rows it reads)."""
    methods = list(dict.fromkeys(row["method"] for _, rows in columns for row in rows))
    values = np.full((len(methods), len(columns)), np.nan)
    for j, (criterion, rows) in enumerate(columns):
        for row in rows:
            value = _value(row, criterion)
            if value is not None:
                values[methods.index(row["method"]), j] = value
    ranks = np.full_like(values, np.nan)
    for j, (criterion, _) in enumerate(columns):
        held = ~np.isnan(values[:, j])
        ordered = -values[held, j] if criterion.higher_is_better else values[held, j]
        ranks[held, j] = stats.rankdata(ordered, method="min")
    table = RankTable(methods, [c.head for c, _ in columns], values, ranks)
    # Coverage first: a mean over one criterion must not head means over all of them.
    order = sorted(
        range(len(methods)),
        key=lambda i: (-table.coverage(methods[i]), _nan_last(table.mean_rank(methods[i])), methods[i]),
    )
    return RankTable([methods[i] for i in order], table.heads, values[order], ranks[order])


def _nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


#: The colour map of the ranks: green for the first, red for the last.
RANK_COLOURS = "RdYlGn_r"
#: The relative luminance below which a cell's text is white: where white's contrast with the cell
#: equals black's (WCAG's contrast ratios, (1.05) / (L + 0.05) = (L + 0.05) / 0.05).
DARK_BELOW = math.sqrt(1.05 * 0.05) - 0.05


def relative_luminance(rgb: tuple[float, ...]) -> float:
    """The relative luminance (WCAG 2) of an sRGB colour of channels in [0, 1]."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_colour(rgb: tuple[float, ...]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgb``."""
    return "white" if relative_luminance(rgb) < DARK_BELOW else "black"


def rank_shades(ranks: np.ndarray) -> np.ndarray:
    """Each rank's place in its column, 0 (the first) to 1 (the last ranked there; NaN: none),
    so that a column's best is green and its last red however many methods it ranks."""
    lasts = np.where(np.isnan(ranks), 1.0, ranks).max(axis=0, initial=1.0)
    return (ranks - 1.0) / np.maximum(lasts - 1.0, 1.0)


def rank_figure(table: RankTable, title: str = "") -> Figure:
    """A heatmap of the ranks (green: first, red: last), each cell its rank over its value in
    black or white by the cell's lightness; right of each row, the method's mean rank and how many
    criteria it is ranked on."""
    rows, cols = table.ranks.shape
    width = 3.2 + 1.05 * cols
    label = (
        "rank (value), 1 best; right: mean rank (criteria ranked on); "
        "rows by criteria ranked on, then mean rank"
    )
    # wrapped to the figure's width (about 12 characters an inch at this size), never cut off
    label = textwrap.wrap(f"{title}: {label}" if title else label, width=int(width * 12))
    fig, ax = plt.subplots(figsize=(width, 1.2 + 0.34 * rows + 0.15 * len(label)))
    shades = rank_shades(table.ranks)
    cmap = plt.get_cmap(RANK_COLOURS)
    ax.imshow(np.ma.masked_invalid(shades), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(rows):
        for j in range(cols):
            rank, value = table.ranks[i, j], table.values[i, j]
            # A cell without a rank is masked: the axes' white shows through.
            colour = "black" if math.isnan(rank) else text_colour(cmap(shades[i, j]))
            text = "-" if math.isnan(rank) else f"{rank:.0f}  ({value:.2f})"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(cols), table.heads, rotation=30, ha="left", fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(rows), table.methods, fontsize=8)
    ax.tick_params(length=0)
    right = ax.secondary_yaxis("right")
    means = [f"{table.mean_rank(m):.1f}  ({table.ranked_on(m)})" for m in table.methods]
    right.set_yticks(range(rows), means, fontsize=8)
    right.tick_params(length=0)
    ax.set_xlabel("\n".join(label), fontsize=8)
    return fig


def plot_ranks(table: RankTable, path: str | Path, title: str = "") -> Path:
    """Write :func:`rank_figure` to ``path`` (PNG or SVG by suffix)."""
    return save_figure(rank_figure(table, title), path)
