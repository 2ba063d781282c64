"""The calibration table of a comparison: each method's fitted temperature and its calibration
figures, raw and after temperature scaling, and whether scaling changes the methods' order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..tasks.calibration import SCALED

#: Calibration of the test predictions at the selected check, which classification runs record
#: (:mod:`labelemb.tasks.calibration`): summary key -> (name of the row's statistics, column head,
#: cell format). Runs recorded before them lack the keys: their cells are "-".
CALIBRATION_COLUMNS = {
    "selected_test_ece": ("ece", "ECE % (selected)", ".2f"),
    "selected_test_nll": ("nll", "NLL (selected)", ".3f"),
}


#: The calibration table's figures (:data:`labelemb.metrics.FIGURES` but the MCE, which one bin
#: decides): row statistics' name (also the summary key ``selected_test_<name>``), column head, cell
#: format. Each is shown raw and, where the runs fit a temperature on their dev split, scaled.
CALIBRATION_TABLE = (
    ("ece", "ECE %", ".2f"),
    ("adaece", "AdaECE %", ".2f"),
    ("classwise_ece", "classwise ECE %", ".2f"),
    ("nll", "NLL", ".3f"),
    ("brier", "Brier", ".3f"),
)
#: The temperature each run fit on its dev split (``selected_temperature``), as a row statistic.
TEMPERATURE = "temperature"


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

    def text(self) -> str:
        """The table with a line above it and the legend and verdict below, as ``comparison.md``
        has it."""
        intro = "Calibration of the test predictions at the check each run selects (mean ± std over seeds):"
        return "\n\n".join(part for part in (intro, self.markdown, self.legend, self.verdict) if part)


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
    columns: list[tuple[str, str, str]] = [(TEMPERATURE, "T", ".2f")] if scaled else []
    for name, head, fmt in CALIBRATION_TABLE:  # every figure, "-" for a run without it
        columns.append((name, head, fmt))
        if scaled:
            columns.append((f"{name}{SCALED}", f"{head} scaled", fmt))
    lines = [
        "| method " + "".join(f"| {head} " for _, head, _ in columns) + "|",
        "| --- " + "| ---: " * len(columns) + "|",
    ]
    for r in rows:
        cells = "".join(f"| {_mean_cell(r, name, fmt)} " for name, _, fmt in columns)
        lines.append(f"| {r['method']} {cells}|")
    legend = (
        "ECE: expected calibration error over 15 equal-width bins of the top softmax probability; "
        "AdaECE: the same over 15 bins of equal mass; classwise ECE: each class's probability binned "
        "as the ECE bins the top one, averaged over the classes (all three in %, 0-100); NLL: mean "
        "negative log-likelihood (nats per example); Brier: mean over examples of sum_k (p_k - [y = k])^2 "
        "(0-2). Lower is better for each; '-' for runs recorded without it."
    )
    if scaled:
        legend += (
            " T: the temperature each run fit on its dev split's logits (minimising their NLL); scaled: "
            "the figure of the test logits divided by that T (T > 1 softens, T < 1 sharpens; the "
            "predicted class, and so the error, is the same)."
        )
        verdict = scaling_reorders(rows)
    elif any(r.get("adaece_mean") is not None for r in rows):
        verdict = (
            "Nothing was scaled: the data has no dev split, and a temperature is fit only on dev, "
            "never on the test split."
        )
    else:
        verdict = (
            "Nothing was scaled: the runs were recorded before runs fit a temperature on their dev "
            "split; train them again for the scaled figures."
        )
    return CalibrationTable("\n".join(lines), legend, verdict, scaled)


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
    moved = [
        f"{method} {raw.index(method) + 1} -> {scaled.index(method) + 1}"
        for method in raw
        if raw.index(method) != scaled.index(method)
    ]
    return (
        f"Ranked by ECE (lowest first), scaling reorders the methods ({', '.join(moved)}): "
        f"raw {' < '.join(raw)} -> scaled {' < '.join(scaled)}{unranked}."
    )
