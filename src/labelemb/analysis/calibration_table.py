"""The calibration table of a comparison: each method's fitted temperature and its calibration
figures, raw and after temperature scaling, and whether scaling changes the methods' order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..metrics.figures import MAP_NAMES, Figure, family, figure
from ..metrics.recalibration import MAPS
from ..tasks.calibration import SCALED
from .tables import mean_std

#: The temperature each run fit on its dev split (``selected_temperature``), as a row statistic.
TEMPERATURE = "temperature"

#: Calibration of the test predictions at the selected check, which classification runs record
#: (:mod:`labelemb.tasks.calibration`): summary key -> (name of the row's statistics, column head,
#: cell format), heads and formats as declared (:mod:`labelemb.metrics.figures`). Runs recorded
#: before them lack the keys: their cells are "-".
CALIBRATION_COLUMNS = {
    f"selected_test_{name}": (name, f"{figure(name).label} (selected)", figure(name).fmt)
    for name in ("ece", "nll")
}


#: The calibration table's figures (the declared calibration family but the MCE, which one bin
#: decides, and the temperature, a column of its own): row statistics' name (also the summary key
#: ``selected_test_<name>``), column head, cell format. Each is shown raw and, where the runs fit a
#: temperature on their dev split, scaled.
CALIBRATION_TABLE = tuple(
    (f.name, f.label, f.fmt) for f in family("calibration") if f.name not in ("mce", TEMPERATURE)
)


#: The figures of each post-hoc map (from the runs' ``evaluation.json``, the map fit on dev and
#: judged on test, ``recal_<map>_<figure>``): the figure, and the declaration of each map's.
MAP_TABLE = ("ece", "classwise_ece", "nll", "brier")


def map_figure(figure_name: str, name: str) -> Figure:
    """The declaration of ``figure_name`` after map ``name`` (``recal_dirichlet_ece``)."""
    return figure(f"recal_{name}_{figure_name}")


def map_statistic(figure_name: str, name: str) -> str:
    """The row statistic of a figure after map ``name``: ``ece_dirichlet``."""
    return f"{figure_name}_{name}"


def recalibration_statistics(evaluations: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Mean and std over a method's runs of each map's figures (``ece_dirichlet_mean``, ...) from
    their ``evaluation.json``; None where a run lacks one (evaluated before runs had the maps, or
    a map its dev split could not fit)."""
    row: dict[str, Any] = {}
    for name in MAPS:
        for figure_name in MAP_TABLE:
            declared = map_figure(figure_name, name)
            values = [None if e is None else e.get("test", {}).get(declared.name) for e in evaluations]
            held = bool(values) and all(v is not None for v in values)
            stem = map_statistic(figure_name, name)
            row[f"{stem}_mean"], row[f"{stem}_std"] = mean_std(values) if held else (None, None)  # type: ignore[arg-type]
    return row


def calibration_statistics() -> list[str]:
    """The row statistics the calibration table adds to those of the main table (whose ECE and NLL
    it shows again): the temperature, then the raw figures, then the scaled ones."""
    raw = [name for name, _, _ in CALIBRATION_TABLE]
    known = {name for name, _, _ in CALIBRATION_COLUMNS.values()}
    return [TEMPERATURE, *(n for n in raw if n not in known), *(f"{n}{SCALED}" for n in raw)]


def _mean_cell(row: dict[str, Any], name: str, fmt: str) -> str:
    mean, std = row.get(f"{name}_mean"), row.get(f"{name}_std")
    return "-" if mean is None else f"{mean:{fmt}} ± {std:{fmt}}"


@dataclass
class CalibrationTable:
    """The calibration table of a comparison: ``markdown`` (the table alone), ``legend`` (what its
    figures are), ``verdict`` (whether scaling changes the methods' order by ECE, or why nothing
    was scaled; None where there is nothing to say) and whether it is ``scaled``."""

    markdown: str
    legend: str
    verdict: str | None
    #: Whether any run fit a temperature: the table has T and the scaled figures.
    scaled: bool
    #: The second table, ECE and NLL after each richer post-hoc map some run has (beside the
    #: temperature-scaled ECE), and its legend; None where no run has one.
    maps: str | None = None
    maps_legend: str | None = None

    def text(self) -> str:
        """The tables with a line above each and the legends and verdict below, as ``comparison.md``
        has them."""
        intro = "Calibration of the test predictions at the check each run selects (mean ± std over seeds):"
        maps_intro = "After a richer post-hoc map than one temperature (each fit on dev, judged on test):"
        parts = (intro, self.markdown, self.legend, self.maps and maps_intro, self.maps, self.maps_legend)
        return "\n\n".join(part for part in (*parts, self.verdict) if part)


def calibration_table(rows: list[dict[str, Any]]) -> CalibrationTable | None:
    """Per method: the fitted temperature T, then ECE, AdaECE, classwise ECE, NLL and Brier, each
    raw and after temperature scaling (the test logits divided by the run's T), mean ± std over
    seeds; "-" where a run lacks a figure (recorded before runs had it). None when no run recorded
    any (text tasks, runs from before).

    Where no run has a scaled figure the table is raw only, with a line saying why: the runs of a
    protocol without a dev split (the AdaECE recorded with no scaled figures beside it: runs that
    have one fit T, the test split never) or runs recorded before temperature scaling. Otherwise a
    line says whether scaling changes the order of the methods by ECE (:func:`scaling_reorders`).
    """
    if not any(r.get(f"{name}_mean") is not None for r in rows for name, _, _ in CALIBRATION_TABLE):
        return None
    scaled = any(
        r.get(f"{name}_mean") is not None
        for r in rows
        for name in calibration_statistics()
        if name == TEMPERATURE or name.endswith(SCALED)
    )
    mapped = [
        name for name in MAPS if any(r.get(f"{map_statistic('ece', name)}_mean") is not None for r in rows)
    ]
    legend = RAW_LEGEND + (" " + SCALED_LEGEND if scaled else "")
    verdicts = [_scaling_verdict(rows, scaled), *(map_reorders(rows, name) for name in mapped)]
    verdict = "\n\n".join(line for line in verdicts if line) or None
    maps = _markdown(rows, _map_columns(scaled, mapped)) if mapped else None
    return CalibrationTable(
        _markdown(rows, _columns(scaled)), legend, verdict, scaled, maps, MAP_LEGEND if mapped else None
    )


def _markdown(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A table of ``columns`` (row statistic, head, format), one row per method, mean ± std."""
    lines = [
        "| method " + "".join(f"| {head} " for _, head, _ in columns) + "|",
        "| --- " + "| ---: " * len(columns) + "|",
    ]
    for r in rows:
        cells = "".join(f"| {_mean_cell(r, name, fmt)} " for name, _, fmt in columns)
        lines.append(f"| {r['method']} {cells}|")
    return "\n".join(lines)


RAW_LEGEND = (
    "ECE: expected calibration error over 15 equal-width bins of the top softmax probability; "
    "AdaECE: the same over 15 bins of equal mass; classwise ECE: each class's probability binned "
    "as the ECE bins the top one, averaged over the classes (all three in %, 0-100); NLL: mean "
    "negative log-likelihood (nats per example); Brier: mean over examples of sum_k (p_k - [y = k])^2 "
    "(0-2). Lower is better for each; '-' for runs recorded without it."
)
SCALED_LEGEND = (
    "T: the temperature each run fit on its dev split's logits (minimising their NLL); scaled: "
    "the figure of the test logits divided by that T (T > 1 softens, T < 1 sharpens; the "
    "predicted class, and so the error, is the same)."
)
MAP_LEGEND = (
    "vector, Dirichlet, binning, isotonic: the figure after a richer post-hoc map, fit on the dev "
    "split and applied to the test predictions (evaluation.json): vector scaling (a weight and a "
    "bias per class), Dirichlet calibration (a matrix on the log-probabilities, off-diagonal and "
    "bias regularised), histogram binning and isotonic regression (each class's probability one "
    "against the rest, renormalised). A per-class map may change the "
    "predicted class. '-': a run evaluated before the maps (labelemb evaluate adds them) or a "
    "dev split a map cannot be fit on."
)


def _columns(scaled: bool) -> list[tuple[str, str, str]]:
    """The table's columns (row statistic, head, format): T where runs scaled, each figure raw and
    scaled."""
    temperature = figure(TEMPERATURE)
    columns: list[tuple[str, str, str]] = (
        [(TEMPERATURE, temperature.label, temperature.fmt)] if scaled else []
    )
    for name, head, fmt in CALIBRATION_TABLE:  # every figure, "-" for a run without it
        columns.append((name, head, fmt))
        if scaled:
            columns.append((f"{name}{SCALED}", f"{head} scaled", fmt))
    return columns


def _map_columns(scaled: bool, mapped: list[str]) -> list[tuple[str, str, str]]:
    """The maps' table: the temperature-scaled ECE to compare with, then ECE and NLL after each map
    (its classwise ECE and Brier stay in evaluation.json: a table of all four would not fit a page)."""
    ece = figure("ece")
    columns = [(f"ece{SCALED}", f"{ece.label} scaled", ece.fmt)] if scaled else []
    for figure_name in MAP_TABLE:
        if figure_name in ("ece", "nll"):
            columns.extend(
                (
                    map_statistic(figure_name, name),
                    map_figure(figure_name, name).label,
                    map_figure(figure_name, name).fmt,
                )
                for name in mapped
            )
    return columns


def _scaling_verdict(rows: list[dict[str, Any]], scaled: bool) -> str | None:
    """Whether scaling reorders the methods, or why nothing was scaled."""
    if scaled:
        return scaling_reorders(rows)
    if any(r.get("adaece_mean") is not None for r in rows):
        return (
            "Nothing was scaled: the data has no dev split, and a temperature is fit only on dev, "
            "never on the test split."
        )
    return (
        "Nothing was scaled: the runs were recorded before runs fit a temperature on their dev "
        "split; train them again for the scaled figures."
    )


def map_reorders(rows: list[dict[str, Any]], name: str) -> str | None:
    """One line on whether the methods' order by mean ECE after map ``name`` differs from their
    order after temperature scaling (lowest first; equal means by name): does a calibration lead
    survive a richer map? None where fewer than two methods have both."""
    after, scaled = f"{map_statistic('ece', name)}_mean", f"ece{SCALED}_mean"
    both = [r for r in rows if r.get(after) is not None and r.get(scaled) is not None]
    if len(both) < 2:
        return None
    by_temperature = [r["method"] for r in sorted(both, key=lambda r: (r[scaled], r["method"]))]
    by_map = [r["method"] for r in sorted(both, key=lambda r: (r[after], r["method"]))]
    label = MAP_NAMES[name]
    if by_temperature == by_map:
        return (
            f"After {label} the methods keep their ECE order after temperature scaling: {' < '.join(by_map)}."
        )
    moved = _moves(by_temperature, by_map)
    return (
        f"Ranked by ECE (lowest first), {label} reorders the methods against temperature scaling "
        f"({', '.join(moved)}): {' < '.join(by_map)}; best after {label}: {by_map[0]}."
    )


def scaling_reorders(rows: list[dict[str, Any]]) -> str | None:
    """One line on whether temperature scaling changes the order of the methods by mean ECE
    (lowest first; equal means by name), among the methods with both a raw and a scaled ECE;
    None where fewer than two have both."""
    both = [r for r in rows if r.get("ece_mean") is not None and r.get(f"ece{SCALED}_mean") is not None]
    if len(both) < 2:
        return None
    raw = [r["method"] for r in sorted(both, key=lambda r: (r["ece_mean"], r["method"]))]
    scaled = [r["method"] for r in sorted(both, key=lambda r: (r[f"ece{SCALED}_mean"], r["method"]))]
    left_out = [r["method"] for r in rows if r not in both]
    unranked = f" ({', '.join(left_out)}: not scaled, not ranked)" if left_out else ""
    if raw == scaled:
        return f"Scaling keeps the ECE order of the methods: {' < '.join(raw)}{unranked}."
    moved = _moves(raw, scaled)
    return (
        f"Ranked by ECE (lowest first), scaling reorders the methods ({', '.join(moved)}): "
        f"raw {' < '.join(raw)} -> scaled {' < '.join(scaled)}{unranked}."
    )


def _moves(before: list[str], after: list[str]) -> list[str]:
    """``method i -> j`` for each method whose place (1-based) differs between two orders."""
    return [
        f"{method} {before.index(method) + 1} -> {after.index(method) + 1}"
        for method in before
        if before.index(method) != after.index(method)
    ]
