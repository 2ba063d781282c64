"""Curves per method in the style of Sun et al. (2017), Figure 2: each seed light, the mean bold.

The error curves (:func:`plot_error_curves`) are of the test error at each check; for a text task,
of the dev score that selects the check (BLEU or ROUGE-L). The risk-coverage curves
(:func:`plot_risk_coverage`) are of each run's selected weights on its test split, as its
``evaluation.json`` records them; the error against severity (:func:`plot_error_severity`) of the
same weights on corrupted copies of the test split, as its ``shift.json`` records them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.selective import CURVE_COVERAGES, RISK_CURVE
from .compare import Run, comparison_metric
from .plotting import plt, save_figure
from .shift_table import SharedConditions, condition_mean, shared_conditions

#: What the curves can be drawn against: the record key -> the axis label.
AXES = {
    "epoch": "epoch",
    "train_seconds": "training seconds",
    "train_flops": "training FLOPs (counted)",
}


def method_colours(count: int) -> Any:
    """A colour map of ten distinct colours, or twenty (in lighter pairs) when more methods are
    drawn: colour ``i % palette`` for the i-th method by name, the same in every figure."""
    palette = 10 if count <= 10 else 20
    colours = plt.get_cmap(f"tab{palette}")
    return lambda i: colours(i % palette)


def _seeds_and_mean(ax: Any, x: np.ndarray, curves: np.ndarray, colour: Any, method: str) -> np.ndarray:
    """Each curve (a seed's) thin and light, their mean bold and labelled; returns the mean."""
    for curve in curves:
        ax.plot(x, curve, color=colour, alpha=0.2, linewidth=0.8)
    mean = curves.mean(0)
    ax.plot(x, mean, color=colour, linewidth=2.0, label=f"{method} (n={len(curves)})")
    return mean


def plot_error_curves(
    runs: dict[str, list[Run]], path: str | Path, title: str = "", axis: str = "epoch"
) -> Path:
    """Test error (%), or a text task's dev score, per method against ``axis`` (epochs, training
    seconds or counted training FLOPs: each check at its seeds' mean); returns the path written."""
    if axis not in AXES:
        raise ValueError(f"curves are drawn against {', '.join(AXES)}, not {axis!r}")
    metric = comparison_metric(runs)
    key = metric.curve
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    colour = method_colours(len(runs))
    tails = []
    for i, (method, method_runs) in enumerate(sorted(runs.items())):
        length = min(len(r.records) for r in method_runs)
        epochs = np.array([[rec[axis] for rec in r.records[:length]] for r in method_runs]).mean(0)
        curves = np.array([[rec[key] for rec in r.records[:length]] for r in method_runs])
        mean = _seeds_and_mean(ax, epochs, curves, colour(i), method)
        tails.append(mean[len(mean) // 4 :])
    # The first checks are far from the rest; frame the part where methods differ.
    if tails:
        low = min(t.min() for t in tails)
        high = max(t.max() for t in tails)
        if metric.higher_is_better:
            ax.set_ylim(max(0.0, low - 0.5 * (high - low)), high + 0.15 * (high - low) + 1e-6)
        else:
            ax.set_ylim(max(0.0, low - 0.15 * (high - low)), high + 0.5 * (high - low) + 1e-6)
    ax.set_xlabel(AXES[axis])
    unit = f" ({metric.unit})" if metric.unit else ""
    better = "higher" if metric.higher_is_better else "lower"
    name = metric.name if key == metric.metric else f"dev {metric.score_name}"
    ax.set_ylabel(f"{name}{unit}" if metric.area == "accuracy" else f"{name} ({better} is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def risk_curve(run: Run) -> np.ndarray | None:
    """The selective risk (%) of ``run``'s max-softmax confidence on its test split at each of
    :data:`~labelemb.metrics.selective.CURVE_COVERAGES`, as its ``evaluation.json`` records it;
    None where it records none (not evaluated, evaluated before runs kept the curve, or diverged)."""
    curve = (run.evaluation or {}).get("test", {}).get(RISK_CURVE)
    if not curve:
        return None
    # Read at the grid's coverages whatever grid it was recorded at (evenly spaced from 0 to 1).
    recorded = np.linspace(0.0, 1.0, len(curve))
    return np.interp(CURVE_COVERAGES, recorded, np.asarray(curve, dtype=float))


def why_no_risk_curve(run: Run) -> str:
    """Why ``run`` has no :func:`risk_curve`, in a few words."""
    if run.evaluation is None:
        return "not evaluated"
    if "selective_msp_aurc" not in run.evaluation.get("test", {}):
        return "no figures: a logit was not finite"
    return "evaluated before runs kept the curve"


def plot_risk_coverage(runs: dict[str, list[Run]], path: str | Path, title: str = "") -> Path | None:
    """The risk-coverage curve of each method's selected weights on the test split: the selective
    risk (%) of the max-softmax confidence against the coverage (%), each run light and the mean of
    a method's runs bold (:func:`risk_curve`). Runs without a recorded curve are left out (a method
    none of whose runs has one too); returns the path written, or None (nothing written) where no
    run has a curve. A method keeps the colour it has in the error curves."""
    colour = method_colours(len(runs))
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    drawn = False
    for i, (method, method_runs) in enumerate(sorted(runs.items())):
        curves = [curve for curve in map(risk_curve, method_runs) if curve is not None]
        if curves:
            _seeds_and_mean(ax, 100.0 * CURVE_COVERAGES, np.array(curves), colour(i), method)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlim(0.0, 100.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("coverage (%): the share of test inputs accepted, most confident first")
    ax.set_ylabel("selective risk (%): error among the accepted")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def severity_conditions(shared: SharedConditions) -> dict[int, list[str]]:
    """Severity -> the shared conditions at it, of the corruptions shared at two or more severities:
    those a scale of strength runs through. A corruption at one severity only (MNIST-C's set, each
    at its paper's severity) is left to the table: folded in, it would change which corruptions a
    point averages, not how strong they are."""
    by_corruption: dict[str, list[str]] = {}
    for key in shared.keys:
        by_corruption.setdefault(shared.corruption[key], []).append(key)
    by_severity: dict[int, list[str]] = {}
    for keys in by_corruption.values():
        if len(keys) > 1:
            for key in keys:
                by_severity.setdefault(shared.severity[key], []).append(key)
    return dict(sorted(by_severity.items()))


def severity_curve(record: dict[str, Any], by_severity: dict[int, list[str]]) -> np.ndarray:
    """A run's error (%) at severity 0 (its clean test split) and at each of ``by_severity``'s: the
    mean over that severity's conditions (:func:`severity_conditions`) of its shift ``record``."""
    shifted = [condition_mean(record, keys, "error") for keys in by_severity.values()]
    return np.array([record["clean"]["error"], *shifted], dtype=float)


def plot_error_severity(runs: dict[str, list[Run]], path: str | Path, title: str = "") -> Path | None:
    """The test error (%) of each method's selected weights against the severity of the corruption
    (0: clean), each run light and the mean of a method's runs bold (:func:`severity_curve`, over
    the conditions every shifted run has). Runs without a ``shift.json`` are left out; returns the
    path written, or None (nothing written) where no corruption is shared at two severities or
    more. A method keeps the colour it has in the error curves."""
    shared = shared_conditions(r.shift for method_runs in runs.values() for r in method_runs)
    by_severity = severity_conditions(shared) if shared is not None else {}
    if not by_severity:
        return None
    severities = np.array([0, *by_severity], dtype=float)
    colour = method_colours(len(runs))
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for i, (method, method_runs) in enumerate(sorted(runs.items())):
        curves = [severity_curve(r.shift, by_severity) for r in method_runs if r.shift is not None]
        if curves:
            _seeds_and_mean(ax, severities, np.array(curves), colour(i), method)
    ax.set_xticks(severities)
    ax.set_xlabel("severity of the corruption (0: the clean test split)")
    ax.set_ylabel("test error (%), mean over the corruptions")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


#: The memorisation figures each check of a noisy run records (metrics.jsonl) -> the panel's title.
MEMORISATION_CURVES = {
    "train_memorised": "wrong labels fitted (% of them)",
    "train_flipped_correct": "wrong labels predicted right (% of them)",
}


def has_memorisation(runs: dict[str, list[Run]]) -> bool:
    """Whether every check of every run records memorisation (runs trained on noisy labels)."""
    return all(
        key in rec
        for method_runs in runs.values()
        for r in method_runs
        for rec in r.records
        for key in MEMORISATION_CURVES
    )


def plot_memorisation(runs: dict[str, list[Run]], path: str | Path, title: str = "") -> Path:
    """The memorisation curves of runs trained on noisy labels (Arpit et al. 2017; Liu et al. 2020,
    Fig. 1): at each check, the share of the wrongly labelled training examples that the last step
    to see them predicted as their wrong label (left) and as their true class (right), per method
    against the epoch, each seed light and the mean bold; returns the path written."""
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.5), sharex=True)
    colour = method_colours(len(runs))
    for i, (method, method_runs) in enumerate(sorted(runs.items())):
        length = min(len(r.records) for r in method_runs)
        epochs = np.array([[rec["epoch"] for rec in r.records[:length]] for r in method_runs]).mean(0)
        for ax, key in zip(axes, MEMORISATION_CURVES):
            curves = np.array([[rec[key] for rec in r.records[:length]] for r in method_runs])
            _seeds_and_mean(ax, epochs, curves, colour(i), method)
    for ax, label in zip(axes, MEMORISATION_CURVES.values()):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_ylim(0.0, 100.0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
