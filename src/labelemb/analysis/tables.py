"""Summaries of many runs as mean +/- standard deviation tables."""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Sequence
from typing import Any

from ..tasks.registry import recorded_scoring


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), as the paper reports."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _ece_cell(runs: Sequence[dict[str, Any]]) -> str:
    raw = [r.get("selected_test_ece") for r in runs]
    scaled = [r.get("selected_test_ece_scaled") for r in runs]
    if any(v is None for v in raw):
        return "-"
    text = f"{statistics.fmean(raw):.2f}"
    return text if any(v is None for v in scaled) else f"{text} -> {statistics.fmean(scaled):.2f}"


def results_table(summaries: Sequence[dict[str, Any]], *, ece: bool = False) -> str:
    """A Markdown table with one row per method over its seeds' summaries.

    With ``ece``, a last column ``ECE % -> scaled``: the mean over seeds of the test ECE at the
    selected check, and after temperature scaling where the runs fit a temperature (means only, so
    that the demo's table stays within 100 columns; ``compare`` has the full calibration table)."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        by_method.setdefault(summary["method"], []).append(summary)
    scoring = recorded_scoring(summaries[0])
    metric = scoring.metric
    name = f"{scoring.name} ({scoring.unit})" if scoring.unit else scoring.name
    ece_head = " ECE % -> scaled |" if ece else ""
    lines = [
        f"| method | seeds | selected {name} | final {name} | s / epoch |{ece_head}",
        "| --- | --- | --- | --- | --- |" + (" --- |" if ece else ""),
    ]
    for method, runs in by_method.items():
        sel = mean_std([r[f"selected_{metric}"] for r in runs])
        fin = mean_std([r[f"final_{metric}"] for r in runs])
        spe = statistics.fmean(r["seconds_per_epoch"] for r in runs)
        lines.append(
            f"| {method} | {len(runs)} | {sel[0]:.2f} ± {sel[1]:.2f} "
            f"| {fin[0]:.2f} ± {fin[1]:.2f} | {spe:.3f} |" + (f" {_ece_cell(runs)} |" if ece else "")
        )
    return "\n".join(lines)


#: The widest line of :func:`noisy_labels_note`: within a terminal's table's width.
NOTE_WIDTH = 100


def noisy_labels_note(summaries: Sequence[dict[str, Any]]) -> str:
    """What a terminal's table says under its figures where the runs trained on noisy labels (their
    summary's ``data.noise``, :mod:`labelemb.data.label_noise`), in lines of 100 characters at
    most; empty otherwise. Their test labels are right, but the temperature behind the ECE after
    scaling was fit on each run's dev split, whose labels are noisy too unless the noise left them
    alone: it fits the wrong labels as well as the right ones."""
    noises = [(s.get("data") or {}).get("noise") for s in summaries]
    noisy = [n for n in noises if n]
    if not noisy:
        return ""
    who = "The runs" if len(noisy) == len(noises) else f"{len(noisy)} of {len(noises)} runs"
    train = statistics.fmean(n["realised_rate"]["train"] for n in noisy)
    note = (
        f"{who} trained on noisy labels ({train:.1f} % of training labels wrong; the test labels are right)"
    )
    if not any(s.get("selected_test_ece_scaled") is not None for s in summaries):
        return textwrap.fill(note + ".", NOTE_WIDTH)
    devs = [n["realised_rate"]["dev"] for n in noisy if "dev" in n["realised_rate"]]
    if len(devs) == len(noisy):
        dev = f"their noisy dev split ({statistics.fmean(devs):.1f} % wrong)"
    elif devs:
        dev = f"their dev split, noisy in {len(devs)} of {len(noisy)} runs"
    else:
        dev = "their dev split, whose labels were not made noisy"
    return textwrap.fill(f"{note}; ECE % -> scaled: the temperature was fit on {dev}.", NOTE_WIDTH)
