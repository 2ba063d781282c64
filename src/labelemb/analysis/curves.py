"""Error curves in the style of Sun et al. (2017), Figure 2: each seed light, the mean bold.

For a text task the curves are of the dev score that selects the check (BLEU or ROUGE-L).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .compare import Run, comparison_metric
from .figures import plt, save_figure

#: What the curves can be drawn against: the record key -> the axis label.
AXES = {
    "epoch": "epoch",
    "train_seconds": "training seconds",
    "train_flops": "training FLOPs (counted)",
}


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
    # Ten distinct colours, or twenty (in lighter pairs) when more methods are drawn.
    palette = 10 if len(runs) <= 10 else 20
    colours = plt.get_cmap(f"tab{palette}")
    tails = []
    for i, (method, method_runs) in enumerate(sorted(runs.items())):
        colour = colours(i % palette)
        length = min(len(r.records) for r in method_runs)
        epochs = np.array([[rec[axis] for rec in r.records[:length]] for r in method_runs]).mean(0)
        curves = np.array([[rec[key] for rec in r.records[:length]] for r in method_runs])
        for curve in curves:
            ax.plot(epochs, curve, color=colour, alpha=0.2, linewidth=0.8)
        mean = curves.mean(0)
        ax.plot(epochs, mean, color=colour, linewidth=2.0, label=f"{method} (n={len(method_runs)})")
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
