"""Methods across noise settings: one experiment folder per setting (the same methods trained on
labels made noisy in different ways), read as comparisons are (:func:`~.compare.load_runs`).

- :func:`rank_table`: each method's clean-test error in each setting with its rank there (1: the
  lowest mean; tied means share the better rank, as :mod:`.ranks` ranks), and its mean rank over
  the settings it ran in;
- :func:`plot_error_against_noise`: the clean-test error against the share of wrong training
  labels, one line per method through the settings in order of that share;
- :func:`welch_between`: two methods' errors in one setting and Welch's p between them;
- :func:`welch_table`: every method's Welch's p against one method in each setting, with the
  direction of the difference.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

from .compare import Run, load_runs, welch_p
from .curves import method_colours
from .plotting import plt, save_figure


@dataclass
class NoiseSetting:
    """One experiment folder: its name, the share of its training labels that are wrong (percent,
    as its runs record it) and its runs by method."""

    name: str
    rate: float
    runs: dict[str, list[Run]]

    def errors(self, method: str) -> list[float]:
        """``method``'s clean-test error (%) at each run's selected check."""
        return [float(r.summary["selected_test_error"]) for r in self.runs.get(method, [])]


def read_settings(folders: dict[str, str | Path]) -> list[NoiseSetting]:
    """Each named experiment folder's runs and its rate of wrong training labels (0 for a folder
    whose runs trained on right labels: the sweep's starting point)."""
    settings = []
    for name, folder in folders.items():
        runs = load_runs(folder)
        first = next(iter(runs.values()))[0]
        noise = first.summary.get("data", {}).get("noise")
        settings.append(NoiseSetting(name, float(noise["realised_rate"]["train"]) if noise else 0.0, runs))
    return settings


def rank_table(settings: list[NoiseSetting]) -> str:
    """Markdown: a row per method, a column per setting (its error mean ± std and its rank there),
    and the mean rank; methods in order of their mean rank."""
    methods = sorted({m for s in settings for m in s.runs})
    ranks: dict[str, list[int]] = {m: [] for m in methods}
    cells: dict[tuple[str, str], str] = {}
    for setting in settings:
        means = {m: statistics.fmean(setting.errors(m)) for m in methods if setting.errors(m)}
        setting_ranks = stats.rankdata(list(means.values()), method="min")
        for method, rank in zip(means, setting_ranks.astype(int).tolist()):
            errors = setting.errors(method)
            spread = statistics.stdev(errors) if len(errors) > 1 else 0.0
            cells[(method, setting.name)] = f"{means[method]:.2f} ± {spread:.2f} ({rank})"
            ranks[method].append(rank)
    order = sorted(methods, key=lambda m: (statistics.fmean(ranks[m]) if ranks[m] else float("inf"), m))
    heads = [f"{s.name} ({s.rate:.1f} % wrong)" for s in settings]
    lines = [
        "| method | " + " | ".join(heads) + " | mean rank |",
        "| --- " + "| ---: " * (len(settings) + 1) + "|",
    ]
    for method in order:
        row = [cells.get((method, s.name), "-") for s in settings]
        mean_rank = f"{statistics.fmean(ranks[method]):.1f}" if ranks[method] else "-"
        lines.append(f"| {method} | " + " | ".join(row) + f" | {mean_rank} |")
    return "\n".join(lines)


def plot_error_against_noise(settings: list[NoiseSetting], path: str | Path, title: str = "") -> Path:
    """The clean-test error (mean over seeds) against the rate of wrong training labels, a line
    per method through the settings it ran in, each setting's name at its rate."""
    ordered = sorted(settings, key=lambda s: s.rate)
    methods = sorted({m for s in settings for m in s.runs})
    colour = method_colours(len(methods))
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    for i, method in enumerate(methods):
        points = [(s.rate, statistics.fmean(s.errors(method))) for s in ordered if s.errors(method)]
        if points:
            ax.plot(*zip(*points), marker="o", color=colour(i), linewidth=1.5, label=method)
    for setting in ordered:
        ax.axvline(setting.rate, color="0.85", linewidth=0.8, zorder=0)
        ax.annotate(
            setting.name,
            (setting.rate, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="0.4",
        )
    ax.set_xlabel("wrong training labels (%)")
    ax.set_ylabel("clean-test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def welch_between(setting: NoiseSetting, method: str, other: str) -> tuple[float, float, float | None]:
    """(``method``'s mean error, ``other``'s, Welch's p between them) in ``setting``."""
    errors, others = setting.errors(method), setting.errors(other)
    if not errors or not others:
        raise ValueError(f"{setting.name} has no runs of {method if not errors else other}")
    return statistics.fmean(errors), statistics.fmean(others), welch_p(errors, others)


def welch_table(settings: list[NoiseSetting], against: str = "onehot") -> str:
    """Markdown: a row per method but ``against``, a column per setting holding Welch's p between the
    method's clean-test errors and ``against``'s there, marked ``↓`` where the method's mean error is
    lower, ``↑`` where it is higher and ``=`` where the means are the same ("-" where either did not
    run, or p cannot be computed); methods in order of how many settings they are significantly
    (p < 0.05) lower in, then by name."""
    methods = sorted({m for s in settings for m in s.runs} - {against})
    cells: dict[tuple[str, str], str] = {}
    lower: dict[str, int] = dict.fromkeys(methods, 0)
    for setting in settings:
        for method in methods:
            if not setting.errors(method) or not setting.errors(against):
                continue
            mine, theirs, p = welch_between(setting, method, against)
            if p is None:
                continue
            direction = "↓" if mine < theirs else "↑" if mine > theirs else "="
            cells[(method, setting.name)] = f"{direction} {p:.2g}"
            lower[method] += int(mine < theirs and p < 0.05)
    order = sorted(methods, key=lambda m: (-lower[m], m))
    lines = [
        "| method | " + " | ".join(s.name for s in settings) + " |",
        "| --- " + "| ---: " * len(settings) + "|",
    ]
    for method in order:
        lines.append(f"| {method} | " + " | ".join(cells.get((method, s.name), "-") for s in settings) + " |")
    return "\n".join(lines)
