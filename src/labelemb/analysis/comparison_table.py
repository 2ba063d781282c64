"""The comparison table (:func:`~labelemb.analysis.compare.comparison_rows`) in Markdown and CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics.figures import figure
from ..tasks.registry import figure_names, recorded_scoring
from ..tasks.scoring import TEST_ERROR, Scoring
from .beyond_error import beyond_error_tables, row_ood_sets
from .calibration_table import CALIBRATION_COLUMNS, calibration_table
from .compare import BASELINE, NO_SPREAD_NOTE, no_spread
from .noise_table import disputed_block, noise_block
from .shift_table import shift_block
from .tag_table import tag_blocks


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, fmt)


def format_markdown(
    rows: list[dict[str, Any]],
    baseline: str = BASELINE,
    scoring: Scoring | None = None,
    *,
    calibration: bool = True,
) -> str:
    """The comparison table in Markdown.

    A text task's table (BLEU, ROUGE) names its score in every column that depends on it, gives
    its AUAC on the score's 0-100 scale, and ends with a line on how to read them. A
    classification table whose runs also report macro-F1 (text classification, imbalanced classes)
    gives it a column before the error's and a line on reading it. Where any run records the
    calibration of its test predictions (classification), four columns end the table: ECE and NLL
    (mean ± std over seeds), each with Welch's p against the baseline; "-" for runs without them.
    A p left out because neither method's seeds vary (:func:`welch_p`) gets a line saying so.
    After it all, with ``calibration``, the :func:`calibration_table` where there is one, the
    beyond-error tables, the under-shift table (:func:`~.shift_table.shift_block`) and the
    noisy-labels and disputed-labels tables (:mod:`~.noise_table`) where runs have their records (the
    report shows them in sections of their own and asks for the comparison without them), and a
    tag comparison's tables last (:mod:`~.tag_table`: the figures beside macro mAP, the calibration
    per tag; the report shows them under its comparison).
    ``scoring`` says how the runs' figure reads (:func:`comparison_metric`); left out, the rows'
    ``metric`` names it.
    """
    scoring = scoring or recorded_scoring({"metric": rows[0].get("metric", TEST_ERROR.metric)})
    columns = _Columns.of(rows, scoring, baseline)
    lines = [*columns.head(), *(columns.row(r) for r in rows), *columns.notes(rows)]
    table = calibration_table(rows) if calibration else None
    if table is not None:
        lines.append("\n" + table.text())
    judged = beyond_error_tables(rows, baseline, row_ood_sets(rows)) if calibration else None
    if judged is not None:
        lines.append("\n" + judged)
    shifted = shift_block(rows, baseline) if calibration else None
    if shifted is not None:
        lines.append("\n" + shifted.text())
    for block in (noise_block(rows, baseline), disputed_block(rows, baseline)) if calibration else ():
        if block is not None:
            lines.append("\n" + block.text())
    lines += ["\n" + block.text() for block in tag_blocks(rows, baseline)] if calibration else []
    return "\n".join(lines)


def format_short(rows: list[dict[str, Any]], baseline: str = BASELINE, scoring: Scoring | None = None) -> str:
    """The few columns of the comparison a terminal shows (issue 79: :func:`format_markdown`'s
    tables ran to some 60 lines, the first of 16 columns, for 2 methods x 2 seeds): per method its
    seeds, the selected test score (mean ± std), Welch's p against ``baseline`` (where it was
    compared), and, where the runs have them, the ECE raw -> after temperature scaling (means, as
    the demo gives them), the AURC and the first OOD set's MSP AUROC (mean ± std). A text task's
    table has its score alone: its runs have none of the others."""
    scoring = scoring or recorded_scoring({"metric": rows[0].get("metric", TEST_ERROR.metric)})
    columns = [(f"{scoring.column()} (selected)", lambda r: _spread(r, "selected"))]
    if any(r["method"] == baseline for r in rows) and len(rows) > 1:
        columns.append((f"p vs {baseline}", lambda r: _cell(r.get("p_value"), ".2g")))
    if any(r.get("ece_mean") is not None for r in rows):
        scaled = any(r.get("ece_scaled_mean") is not None for r in rows)
        columns.append((f"{figure('ece').label}{' -> scaled' if scaled else ''}", _ece_means))
    aurc = figure("selective_msp_aurc")
    if any(r.get("beyond_aurc_mean") is not None for r in rows):
        columns.append((aurc.label, lambda r: _spread(r, "beyond_aurc")))
    sets = row_ood_sets(rows)
    if sets:
        # One set's MSP AUROC, as the demo shows it: the others are in comparison.md.
        head, stem = f"{sets[0]} AUROC % (MSP)", f"ood_{sets[0]}_msp_auroc"
        columns.append((head, lambda r: _spread(r, stem)))
    lines = [
        "| method | seeds | " + " | ".join(head for head, _ in columns) + " |",
        "| --- | ---: |" + " ---: |" * len(columns),
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seeds']} | " + " | ".join(cell(r) for _, cell in columns) + " |")
    return "\n".join(lines)


def _spread(row: dict[str, Any], stem: str, fmt: str = ".2f") -> str:
    """``mean ± std`` of a row's statistic ``stem``; "-" where the row lacks it."""
    mean, std = row.get(f"{stem}_mean"), row.get(f"{stem}_std")
    return "-" if mean is None else f"{mean:{fmt}} ± {std:{fmt}}"


def _ece_means(row: dict[str, Any]) -> str:
    raw, scaled = row.get("ece_mean"), row.get("ece_scaled_mean")
    if raw is None:
        return "-"
    return f"{raw:.2f}" if scaled is None else f"{raw:.2f} -> {scaled:.2f}"


@dataclass
class _Columns:
    """The columns of :func:`format_markdown`'s table, as its rows decide them."""

    baseline: str
    scoring: Scoring
    names: dict[str, str]
    #: The other test figures the runs report (macro-F1), each a column before the main one.
    others: list[str]
    #: Whether the runs record the epoch of their selected check (and why they stopped).
    peaked: bool
    #: The calibration figures (ECE, NLL) some run records: (name, column head, cell format).
    calibrated: list[tuple[str, str, str]]

    @classmethod
    def of(cls, rows: list[dict[str, Any]], scoring: Scoring, baseline: str) -> _Columns:
        return cls(
            baseline=baseline,
            scoring=scoring,
            names={**figure_names(), **scoring.names()},
            others=[
                key.removesuffix("_mean")
                for key in rows[0]
                if key.startswith("test_") and key.endswith("_mean")
            ],
            peaked=any(r.get("selected_epoch") is not None for r in rows),
            calibrated=[
                (name, head, fmt)
                for name, head, fmt in CALIBRATION_COLUMNS.values()
                if any(r.get(f"{name}_mean") is not None for r in rows)
            ],
        )

    @property
    def text(self) -> bool:
        return self.scoring.area == "score"

    def head(self) -> list[str]:
        """The head line and the alignment line."""
        baseline, label, score = self.baseline, self.scoring.column(), self.scoring.score_name
        other_heads = "".join(f"| {self.names.get(o, o)} (selected) " for o in self.others)
        reach, area = (
            (f"best dev {score}", f"AUAC (test {score}, 0-100)") if self.text else ("best dev", "AUAC")
        )
        peak_head = "| best dev at epoch (stopped early) " if self.peaked else ""
        calibration_heads = "".join(
            f"| {head} | p {head.split()[0]} vs {baseline} " for _, head, _ in self.calibrated
        )
        return [
            f"| method | seeds {other_heads}| {label} (selected) | min | max | final {label} {peak_head}"
            f"| s / epoch | time to {baseline}'s {reach} | {label} at {baseline}'s compute | {area} "
            f"| p vs {baseline} (Welch) {calibration_heads}|",
            "| --- | ---: "
            + "| ---: " * (len(self.others) + self.peaked)
            + "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            + "| ---: | ---: " * len(self.calibrated)
            + "|",
        ]

    def row(self, r: dict[str, Any]) -> str:
        """One method's line."""
        mixed = " (mixed)" if r.get("timing") == "mixed" else ""
        other_cells = "".join(f"| {r[f'{o}_mean']:.2f} ± {r[f'{o}_std']:.2f} " for o in self.others)
        peak_cell = ""
        if self.peaked:
            epoch = r.get("selected_epoch")
            peak_cell = "| - " if epoch is None else f"| {epoch:.1f} ({r['stopped_early']}/{r['seeds']}) "
        calibration_cells = ""
        for name, _, fmt in self.calibrated:
            mean, std = r.get(f"{name}_mean"), r.get(f"{name}_std")
            value = "-" if mean is None else f"{mean:{fmt}} ± {std:{fmt}}"
            calibration_cells += f"| {value} | {_cell(r.get(f'{name}_p_value'), '.2g')} "
        return (
            f"| {r['method']} | {r['seeds']} {other_cells}"
            f"| {r['selected_mean']:.2f} ± {r['selected_std']:.2f} "
            f"| {r['selected_min']:.2f} | {r['selected_max']:.2f} "
            f"| {r['final_mean']:.2f} ± {r['final_std']:.2f} {peak_cell}"
            f"| {r['seconds_per_epoch']:.2f}{mixed} | {_cell(r['time_fraction'], '.2f')} "
            f"| {_cell(r.get('at_baseline_compute'), '.2f')} "
            f"| {r['auac']:{'.2f' if self.text else '.4f'}} | {_cell(r['p_value'], '.2g')} "
            f"{calibration_cells}|"
        )

    def notes(self, rows: list[dict[str, Any]]) -> list[str]:
        """The lines under the table that say how to read the columns it has."""
        baseline, score = self.baseline, self.scoring.score_name
        lines = []
        if any(r.get("at_baseline_compute") is not None for r in rows):
            lines.append(
                f"\nat {baseline}'s compute: each run's test score at its best dev check among those made "
                f"within the training FLOPs {baseline} needed for its best dev check (counted FLOPs, "
                "mean over seeds); '-' where a method's first check already costs more."
            )
        if self.peaked:
            lines.append(
                "\nbest dev at epoch: the mean epoch of the check each run selects; (k/n): the runs that "
                "early stopping ended, the others having reached train.epochs (or train.max_steps)."
            )
        if len({r.get("timing") for r in rows}) > 1:
            lines.append(
                "\ns / epoch: some runs trained side by side with other seeds (batched; each counted as "
                "1/S of the group's time) and others alone; (mixed) marks a method with both. Compare "
                "times only between runs trained the same way."
            )
        if self.calibrated:
            lines.append(
                "\nECE %: the expected calibration error of the test predictions at the check each run "
                "selects (15 equal-width bins of the top softmax probability; 0-100, lower is better); "
                "NLL: their mean negative log-likelihood (nats per example, lower is better); mean ± std "
                f"over seeds, p: Welch's t-test against {baseline}; '-' for runs recorded without them."
            )
        base_row = next((r for r in rows if r["method"] == baseline), None)
        statistics_with_p = ["selected", *(name for name, _, _ in self.calibrated)]
        if any(no_spread(r, base_row, statistic) for r in rows for statistic in statistics_with_p):
            lines.append("\n" + NO_SPREAD_NOTE.format(baseline=baseline))
        if "test_macro_f1" in self.others:
            lines.append(
                "\ntest macro-F1 %: 0-100, higher is better: the mean over the classes (those present in "
                "the test set or predicted) of each class's F1, at the check each run selects."
            )
        if self.text:
            lines.append(
                f"\n{score}: 0-100, higher is better; (selected): on the test set at the check each run "
                f"selects (its best dev {score}); AUAC: the area under the test {score} curve over "
                f"epochs, divided by the epochs (the mean test {score} over training, on the same 0-100 "
                "scale)."
            )
        return lines


def format_csv(rows: list[dict[str, Any]]) -> str:
    """The comparison table as CSV, one column per statistic."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
