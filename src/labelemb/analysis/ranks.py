"""Methods against criteria, as ranks: one picture of what a comparison found.

Each criterion is a column of the comparison's rows (:func:`~.compare.comparison_rows`): the
selected test error (or the task's score) and the figures the task reports beside it, the test ECE
raw and after temperature scaling (a tag task's marginal ECE raw and after a temperature per tag),
the AURC of selective classification, each OOD set's AUROC by the max softmax, the error under
shift, and, from further comparisons of the same methods on noisy training labels, the clean-test
error under each. In every column the methods are ranked by their mean over seeds (1: the best;
tied means share the better rank); a method without the figure has no rank there. The rows are
ordered by the mean of a method's ranks.
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
    order of their mean rank."""

    methods: list[str]
    heads: list[str]
    values: np.ndarray  # (methods, criteria)
    ranks: np.ndarray  # (methods, criteria)

    def mean_rank(self, method: str) -> float:
        held = self.ranks[self.methods.index(method)]
        held = held[~np.isnan(held)]
        return float(held.mean()) if held.size else math.nan

    def markdown(self) -> str:
        """The table as Markdown: each cell ``value (rank)``, then the mean rank."""
        lines = ["| method | " + " | ".join(self.heads) + " | mean rank |"]
        lines.append("| --- " + "| ---: " * (len(self.heads) + 1) + "|")
        for i, method in enumerate(self.methods):
            cells = [
                "-" if math.isnan(v) else f"{v:.2f} ({r:.0f})" for v, r in zip(self.values[i], self.ranks[i])
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {self.mean_rank(method):.1f} |")
        return "\n".join(lines)


def comparison_criteria(rows: list[dict[str, Any]]) -> list[Criterion]:
    """The criteria the rows of one comparison have a figure for, at least one method each."""
    scoring = recorded_scoring({"metric": rows[0].get("metric", "test_error")})
    candidates = [
        Criterion(f"{scoring.name} {scoring.unit}".strip(), "selected", scoring.higher_is_better),
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


def further_criterion(rows: list[dict[str, Any]], name: str) -> Criterion:
    """The one column a further comparison adds: its score, headed by its share of wrong training
    labels where its runs trained on noisy labels (their test split is clean), else by ``name``."""
    scoring = recorded_scoring({"metric": rows[0].get("metric", "test_error")})
    rates = [row["noise_rate_mean"] for row in rows if row.get("noise_rate_mean") is not None]
    if rates:
        return Criterion(f"{scoring.score_name} % at {np.mean(rates):.0f} % wrong labels", "selected", False)
    return Criterion(f"{scoring.score_name} ({name})", "selected", scoring.higher_is_better)


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
    order = sorted(range(len(methods)), key=lambda i: (_nan_last(table.mean_rank(methods[i])), methods[i]))
    return RankTable([methods[i] for i in order], table.heads, values[order], ranks[order])


def _nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


def rank_figure(table: RankTable, title: str = "") -> Figure:
    """A heatmap of the ranks (green: first, red: last), each cell its rank over its value."""
    rows, cols = table.ranks.shape
    width = 2.2 + 1.05 * cols
    fig, ax = plt.subplots(figsize=(width, 1.0 + 0.34 * rows))
    scaled = table.ranks / max(rows, 1)
    ax.imshow(np.ma.masked_invalid(scaled), cmap="RdYlGn_r", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(rows):
        for j in range(cols):
            rank, value = table.ranks[i, j], table.values[i, j]
            text = "-" if math.isnan(rank) else f"{rank:.0f}  ({value:.2f})"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(cols), table.heads, rotation=30, ha="left", fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(rows), table.methods, fontsize=8)
    ax.tick_params(length=0)
    if title:
        # wrapped to the figure's width (about 12 characters an inch at this size), never cut off
        label = f"{title}: rank (value), 1 best; rows by mean rank"
        ax.set_xlabel("\n".join(textwrap.wrap(label, width=int(width * 12))), fontsize=8)
    return fig


def plot_ranks(table: RankTable, path: str | Path, title: str = "") -> Path:
    """Write :func:`rank_figure` to ``path`` (PNG or SVG by suffix)."""
    return save_figure(rank_figure(table, title), path)
