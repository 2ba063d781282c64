"""Reliability diagrams (Guo et al. 2017, Figure 1): accuracy against confidence, per method.

Each classification run records the bins of its test predictions at the selected check
(``selected_test_calibration`` in its summary, :mod:`labelemb.tasks.calibration`) and, where it fit
a temperature on its dev split, those of the test logits divided by it
(``selected_test_calibration_scaled``). A method's diagram pools the bins of all its seeds (the
same test set, so the pooled bins are those of every seed's predictions together); below it, how
many predictions fell in each bin. Where any run was scaled, each method has two diagrams side by
side: raw, then scaled.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import Calibration, pooled_bins
from ..tasks.calibration import SCALED
from .compare import Run
from .plotting import plt, save_figure

#: The summary key holding a run's bins at its selected check.
BINS_KEY = "selected_test_calibration"
#: The same after temperature scaling (runs with a dev split).
SCALED_BINS_KEY = f"{BINS_KEY}{SCALED}"
#: Panels per row of the figure.
COLUMNS = 4
#: The height (inches) of the strip below the diagrams that holds their legend.
LEGEND_HEIGHT = 0.5


def method_bins(method_runs: list[Run], key: str = BINS_KEY) -> tuple[Calibration | None, int]:
    """The pooled bins (summary ``key``) of the runs that recorded them (None if none did), and
    how many did."""
    recorded = [r.summary[key] for r in method_runs if r.summary.get(key)]
    return (pooled_bins(recorded) if recorded else None), len(recorded)


def has_calibration(runs: dict[str, list[Run]], key: str = BINS_KEY) -> bool:
    """Whether any run of the comparison recorded the calibration of its test predictions (with
    ``key=SCALED_BINS_KEY``: after temperature scaling)."""
    return any(r.summary.get(key) for method_runs in runs.values() for r in method_runs)


def _draw(ax: Any, bars: Any, pooled: Calibration) -> None:
    width = 1.0 / pooled.bins
    left = np.arange(pooled.bins) * width
    filled = np.array(pooled.counts) > 0
    accuracy = np.array([a if a is not None else 0.0 for a in pooled.accuracy])
    confidence = np.array([c if c is not None else 0.0 for c in pooled.confidence])
    ax.bar(
        left[filled],
        accuracy[filled],
        width,
        align="edge",
        color="#4c72b0",
        edgecolor="white",
        label="accuracy",
    )
    # From each bin's accuracy to its mean confidence (Guo et al.'s red "gap" bars), hatched and
    # unfilled: where the predictions are underconfident it lies over the accuracy bar, which must
    # stay readable; a black tick marks the mean confidence itself.
    gap = confidence[filled] - accuracy[filled]
    ax.bar(
        left[filled],
        gap,
        width,
        bottom=accuracy[filled],
        align="edge",
        facecolor="none",
        hatch="///",
        edgecolor="#d62728",
        linewidth=0.8,
        label="gap to mean confidence",
    )
    ax.hlines(
        confidence[filled],
        left[filled],
        left[filled] + width,
        color="black",
        linewidth=1.5,
        label="mean confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1.0, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.tick_params(labelbottom=False)
    fractions = np.array(pooled.counts) / max(sum(pooled.counts), 1)
    bars.bar(left, fractions, width, align="edge", color="0.55", edgecolor="white")
    bars.set_xlim(0, 1)
    bars.set_ylim(0, max(float(fractions.max()), 1e-9) * 1.1)
    bars.set_xlabel("confidence (top softmax probability)")
    bars.set_ylabel("share")


def _seeds(recorded: int, seeds: int) -> str:
    """Whose bins a panel shows: ``1 seed``, ``3 seeds pooled``, ``2 of 3 seeds``."""
    if recorded != seeds:
        return f"{recorded} of {seeds} seeds"
    return "1 seed" if recorded == 1 else f"{recorded} seeds pooled"


def _legend(fig: Any, cell: Any, drawn: Any, columns: int) -> None:
    """The legend of the diagrams, once, in a strip of its own below them: inside a diagram it
    covered bars wherever they reached its corner (an underconfident method's low-confidence
    bins)."""
    strip = fig.add_subplot(cell)
    strip.set_axis_off()
    handles, labels = drawn.get_legend_handles_labels()
    # One row where the figure is wide enough for the four entries, else two.
    strip.legend(handles, labels, loc="center", ncol=4 if columns > 1 else 2, fontsize=7, frameon=False)


def _temperature(method_runs: list[Run]) -> str:
    fitted = [
        r.summary["selected_temperature"]
        for r in method_runs
        if r.summary.get("selected_temperature") is not None
    ]
    if not fitted:
        return ""
    return f"T {fitted[0]:.2f}" if len(fitted) == 1 else f"mean T {statistics.fmean(fitted):.2f}"


def _not_recorded(ax: Any, bars: Any, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(
        0.5,
        0.5,
        "not recorded\n(runs from before)",
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="0.4",
    )
    ax.set_axis_off()
    bars.set_axis_off()


def plot_reliability(runs: dict[str, list[Run]], path: str | Path, title: str = "") -> Path | None:
    """One reliability diagram per method (seeds pooled) in one figure, and where any run fit a
    temperature, the method's scaled diagram beside its raw one; None (nothing written) when no
    run recorded its calibration (runs from before, or a text task)."""
    if not has_calibration(runs):
        return None
    scaled = has_calibration(runs, SCALED_BINS_KEY)
    # Each method's panels: raw, and scaled beside it.
    panels = [
        (method, key) for method in runs for key in ((BINS_KEY, SCALED_BINS_KEY) if scaled else (BINS_KEY,))
    ]
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = plt.figure(figsize=(3.4 * columns, 4.3 * rows + LEGEND_HEIGHT))
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[4.3] * rows + [LEGEND_HEIGHT])
    drawn = None  # the first diagram drawn, whose entries the legend names
    for i, (method, key) in enumerate(panels):
        # Each diagram sits right above its histogram; the methods have room between them.
        cell = grid[divmod(i, columns)].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
        ax, bars = fig.add_subplot(cell[0]), fig.add_subplot(cell[1])
        pooled, recorded = method_bins(runs[method], key)
        seeds = len(runs[method])
        name = method if not scaled else f"{method}, {'scaled' if key == SCALED_BINS_KEY else 'raw'}"
        if pooled is None:
            _not_recorded(ax, bars, name)
            continue
        _draw(ax, bars, pooled)
        detail = _seeds(recorded, seeds)
        if key == SCALED_BINS_KEY:
            # The seeds are those of the raw panel beside it unless some lack the scaled bins.
            shown = [detail if recorded != seeds else "", _temperature(runs[method])]
            detail = ", ".join(part for part in shown if part) or detail
        ax.set_title(f"{name}\nECE {pooled.ece:.2f} % ({detail})", fontsize=10)
        drawn = drawn or ax
    if drawn is not None:
        _legend(fig, grid[rows, :], drawn, columns)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
