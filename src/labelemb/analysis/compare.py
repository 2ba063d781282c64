"""A comparison of methods over seeds: table with statistics, read from run folders."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..rundir import SUMMARY_FILE, run_dirs
from ..tasks.calibration import SCALED
from ..tasks.registry import figure_names, recorded_scoring
from ..tasks.scoring import TEST_ERROR, Scoring

BASELINE = "onehot"

#: Calibration of the test predictions at the selected check, which classification runs record
#: (:mod:`labelemb.tasks.calibration`): summary key -> (name of the row's statistics, column head,
#: cell format). Runs recorded before them lack the keys: their cells are "-".
CALIBRATION_COLUMNS = {
    "selected_test_ece": ("ece", "ECE % (selected)", ".2f"),
    "selected_test_nll": ("nll", "NLL (selected)", ".3f"),
}


#: The calibration table's figures (:data:`labelemb.tasks.calibration.FIGURES` but the MCE, which one
#: bin decides): row statistics' name (also the summary key ``selected_test_<name>``), column head, cell
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


def reported_metric(summary: dict[str, Any]) -> Scoring:
    """How a run's figure reads (``summary["scoring"]``, recorded by its task)."""
    return recorded_scoring(summary)


@dataclass
class Run:
    """One finished (method, seed) run: its summary and its evaluation records."""

    method: str
    seed: int
    summary: dict[str, Any]
    records: list[dict[str, Any]]


def load_runs(experiment_dir: str | Path) -> dict[str, list[Run]]:
    """Every finished run under ``experiment_dir/<method>/seed<N>/``, grouped by method."""
    experiment_dir = Path(experiment_dir)
    runs: dict[str, list[Run]] = {}
    for folder in run_dirs(experiment_dir):
        metric = reported_metric(folder.read_summary()).metric
        summary = folder.read_summary(required=(f"selected_{metric}", f"final_{metric}", "seconds_per_epoch"))
        # The metrics the summary reports must be in every record (not for a split the data lacks).
        metrics = [
            k.removeprefix("final_") for k, v in summary.items() if k.startswith("final_") and v is not None
        ]
        records = folder.read_metrics(required=["train_seconds", *metrics])
        runs.setdefault(summary["method"], []).append(
            Run(summary["method"], summary["seed"], summary, records)
        )
    if not runs:
        raise FileNotFoundError(
            f"no finished runs under {experiment_dir} (expected <method>/seed<N>/{SUMMARY_FILE}); "
            "run `labelemb compare --config ...` first"
        )
    for method_runs in runs.values():
        method_runs.sort(key=lambda r: r.seed)
    return runs


def mean_curve(runs: list[Run], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of ``key`` at each check, with mean training seconds and epochs."""
    length = min(len(r.records) for r in runs)
    values = np.array([[rec[key] for rec in r.records[:length]] for r in runs], dtype=float)
    seconds = np.array([[rec["train_seconds"] for rec in r.records[:length]] for r in runs], dtype=float)
    epochs = np.array([rec["epoch"] for rec in runs[0].records[:length]], dtype=float)
    return values.mean(0), seconds.mean(0), epochs


def time_to_reach(
    runs: list[Run], target: float, key: str, higher_is_better: bool = False, axis: str = "seconds"
) -> float | None:
    """Mean training seconds (or, with ``axis="epochs"``, epochs) until the seed-mean ``key``
    curve first reaches ``target``."""
    values, seconds, epochs = mean_curve(runs, key)
    reached = np.nonzero(values >= target - 1e-9 if higher_is_better else values <= target + 1e-9)[0]
    position = epochs if axis == "epochs" else seconds
    return float(position[reached[0]]) if len(reached) else None


def compute_budget(runs: list[Run], key: str, higher_is_better: bool) -> float | None:
    """The seed-mean training FLOPs at the check where the seed-mean ``key`` curve is best: the
    compute the baseline needed for its best (None for runs recorded without FLOPs)."""
    if not all("train_flops" in rec for r in runs for rec in r.records):
        return None
    values, _, _ = mean_curve(runs, key)
    length = len(values)
    flops = np.array([[rec["train_flops"] for rec in r.records[:length]] for r in runs]).mean(0)
    best = int(np.argmax(values) if higher_is_better else np.argmin(values))
    return float(flops[best])


def score_within(run: Run, metric: Scoring, dev_key: str, budget: float) -> float | None:
    """The test score of ``run`` at its best dev check among those within ``budget`` training FLOPs
    (the first of equals), or None if its first check already costs more."""
    within = [rec for rec in run.records if rec.get("train_flops", math.inf) <= budget * (1 + 1e-9)]
    if not within:
        return None
    sign = -1.0 if metric.higher_is_better else 1.0
    chosen = min(within, key=lambda rec: (sign * rec[dev_key], rec["step"]))
    return float(chosen[metric.metric])


def auac(run: Run, metric: Scoring = TEST_ERROR) -> float:
    """Area under the test-accuracy curve over epochs, divided by the epochs it spans.

    The LwAL paper's AUAC (0..1, accuracy = 1 - test error / 100): a larger area means the
    accuracy rose earlier. For a score where higher is better (BLEU, ROUGE) the curve is the
    score itself, so its AUAC is on the score's own 0-100 scale: the mean test score over
    training, counting 0 at epoch 0.
    """
    epochs = np.array([0.0] + [r["epoch"] for r in run.records])
    values = np.array([r[metric.metric] for r in run.records], dtype=float)
    curve = np.concatenate([[0.0], values if metric.area == "score" else 1.0 - values / 100.0])
    return float(np.trapezoid(curve, epochs) / epochs[-1])


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def comparison_metric(runs: dict[str, list[Run]]) -> Scoring:
    """The metric every run of a comparison reports; a ValueError if they differ."""
    metrics = {reported_metric(r.summary) for method_runs in runs.values() for r in method_runs}
    if len(metrics) > 1:
        raise ValueError(
            f"the runs report different metrics ({', '.join(sorted(m.metric for m in metrics))}); "
            "compare runs of one experiment only"
        )
    return metrics.pop()


def comparison_rows(runs: dict[str, list[Run]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """One row of statistics per method (see :func:`format_markdown` for the columns)."""
    metric = comparison_metric(runs)
    higher = metric.higher_is_better
    base_runs = runs.get(baseline)
    dev_key = "dev_" + metric.metric.removeprefix("test_")
    key = dev_key if base_runs and dev_key in base_runs[0].records[0] else metric.metric
    base_time = base_target = budget = None
    if base_runs:
        base_values, _, _ = mean_curve(base_runs, key)
        base_target = float(base_values.max() if higher else base_values.min())
        base_time = time_to_reach(base_runs, base_target, key, higher)
    budget = compute_budget(base_runs, key, higher) if base_runs else None
    base_selected = [r.summary[f"selected_{metric.metric}"] for r in base_runs] if base_runs else []
    rows = []
    for method, method_runs in runs.items():
        selected = [r.summary[f"selected_{metric.metric}"] for r in method_runs]
        final = [r.summary[f"final_{metric.metric}"] for r in method_runs]
        row: dict[str, Any] = {"method": method, "seeds": len(method_runs)}
        row["selected_mean"], row["selected_std"] = mean_std(selected)
        row["selected_min"], row["selected_max"] = min(selected), max(selected)
        row["final_mean"], row["final_std"] = mean_std(final)
        for other, _ in metric.reported:
            row[f"{other}_mean"], row[f"{other}_std"] = mean_std(
                [r.summary[f"selected_{other}"] for r in method_runs]
            )
        row["seconds_per_epoch"] = statistics.fmean(r.summary["seconds_per_epoch"] for r in method_runs)
        batched = sum("batched_seeds" in r.summary for r in method_runs)
        row["timing"] = "batched" if batched == len(method_runs) else "alone" if not batched else "mixed"
        row["auac"] = statistics.fmean(auac(r, metric) for r in method_runs)
        reach = time_to_reach(method_runs, base_target, key, higher) if base_target is not None else None
        row["time_fraction"] = reach / base_time if reach is not None and base_time else None
        within = [score_within(r, metric, key, budget) for r in method_runs] if budget is not None else []
        row["at_baseline_compute"] = (
            statistics.fmean(within) if within and all(v is not None for v in within) else None
        )
        row["p_value"] = welch_p(selected, base_selected) if method != baseline else None
        row["selected_epoch"], row["stopped_early"] = _where_runs_peaked(method_runs)
        for field, (name, _, _) in CALIBRATION_COLUMNS.items():
            against = base_runs if method != baseline else None
            calibration = _calibration_statistics(method_runs, against, field)
            row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_p_value"] = calibration
        for name in calibration_statistics():
            field = f"selected_{name}" if name == TEMPERATURE else f"selected_test_{name}"
            row[f"{name}_mean"], row[f"{name}_std"], _ = _calibration_statistics(method_runs, None, field)
        row["metric"] = metric.metric  # last: the columns before it keep their places in every CSV
        rows.append(row)
    rows.sort(key=lambda r: (r["method"] != baseline, r["method"]))
    return rows


def _calibration_statistics(
    method_runs: list[Run], base_runs: list[Run] | None, key: str
) -> tuple[float | None, float | None, float | None]:
    """Mean and std over seeds of the summary's ``key`` (a calibration figure), and Welch's p
    against the baseline's runs; Nones where a run lacks it (recorded before runs had it)."""
    values = [r.summary.get(key) for r in method_runs]
    if any(v is None for v in values):
        return None, None, None
    mean, std = mean_std(values)
    base = [r.summary.get(key) for r in base_runs or []]
    return mean, std, welch_p(values, base) if all(v is not None for v in base) else None


def welch_p(values: list[float], base: list[float]) -> float | None:
    """Two-sided Welch's t-test p of ``values`` against ``base``; None unless both have two seeds.

    Where neither group varies (every seed of each scores the same, as small test sets often
    give), the test has no spread to weigh a difference against: p is 1.0 when the two scores are
    equal, and None ("-" in a table, with :data:`NO_SPREAD_NOTE`) when they differ. Where only one
    group varies, the test is the usual one, that group's spread standing for both.
    """
    if len(values) < 2 or len(base) < 2:
        return None
    # statistics sums exactly, so equal scores have a variance of exactly 0; scipy's moments of
    # them are a rounding error away from it, and it warns of "catastrophic cancellation".
    spread, base_spread = statistics.variance(values), statistics.variance(base)
    if spread == 0 and base_spread == 0:
        return 1.0 if values[0] == base[0] else None
    result = stats.ttest_ind_from_stats(
        statistics.fmean(values),
        math.sqrt(spread),
        len(values),
        statistics.fmean(base),
        math.sqrt(base_spread),
        len(base),
        equal_var=False,
    )
    return float(result.pvalue)


#: Said under a table where :func:`welch_p` gave no p because neither group varies.
NO_SPREAD_NOTE = (
    "p '-' beside a number, for a method of two or more seeds other than {baseline}: every seed of "
    "the method scores the same and so does every seed of {baseline}, a different value; with no "
    "spread in either, Welch's t-test has nothing to weigh the difference against (where the two "
    "are equal, p is 1)."
)


def no_spread(row: dict[str, Any], base: dict[str, Any] | None, statistic: str) -> bool:
    """Whether ``row``'s p of ``statistic`` ("selected", "ece", "nll") is missing because neither
    it nor ``base`` (the baseline's row) varies over its seeds, though both have two or more."""
    p_key = "p_value" if statistic == "selected" else f"{statistic}_p_value"
    if base is None or row is base or row.get(p_key) is not None or min(row["seeds"], base["seeds"]) < 2:
        return False
    return row.get(f"{statistic}_std") == 0 and base.get(f"{statistic}_std") == 0


def _where_runs_peaked(method_runs: list[Run]) -> tuple[float | None, int | None]:
    """The mean epoch of the runs' selected checks, and how many of them early stopping ended.

    (None, None) for runs that do not record why they stopped (written before they did).
    """
    if not all("stopped" in r.summary and "selected_epoch" in r.summary for r in method_runs):
        return None, None
    epoch = statistics.fmean(r.summary["selected_epoch"] for r in method_runs)
    return epoch, sum(r.summary["stopped"].get("reason") == "early_stopping" for r in method_runs)


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
    After it all, with ``calibration``, the :func:`calibration_table` where there is one (the
    report shows it in a section of its own and asks for the comparison without it).
    ``scoring`` says how the runs' figure reads (:func:`comparison_metric`); left out, the rows'
    ``metric`` names it.
    """
    scoring = scoring or recorded_scoring({"metric": rows[0].get("metric", TEST_ERROR.metric)})
    names = {**figure_names(), **scoring.names()}
    label = scoring.column()
    text = scoring.area == "score"
    others = [
        key.removesuffix("_mean") for key in rows[0] if key.startswith("test_") and key.endswith("_mean")
    ]
    other_heads = "".join(f"| {names.get(o, o)} (selected) " for o in others)
    score = scoring.score_name
    reach, area = (f"best dev {score}", f"AUAC (test {score}, 0-100)") if text else ("best dev", "AUAC")
    peaked = any(r.get("selected_epoch") is not None for r in rows)
    peak_head = "| best dev at epoch (stopped early) " if peaked else ""
    calibrated = [
        (name, head, fmt)
        for name, head, fmt in CALIBRATION_COLUMNS.values()
        if any(r.get(f"{name}_mean") is not None for r in rows)
    ]
    calibration_heads = "".join(f"| {head} | p {head.split()[0]} vs {baseline} " for _, head, _ in calibrated)
    lines = [
        f"| method | seeds {other_heads}| {label} (selected) | min | max | final {label} {peak_head}"
        f"| s / epoch | time to {baseline}'s {reach} | {label} at {baseline}'s compute | {area} "
        f"| p vs {baseline} (Welch) {calibration_heads}|",
        "| --- | ---: "
        + "| ---: " * (len(others) + peaked)
        + "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        + "| ---: | ---: " * len(calibrated)
        + "|",
    ]
    for r in rows:
        mixed = " (mixed)" if r.get("timing") == "mixed" else ""
        other_cells = "".join(f"| {r[f'{o}_mean']:.2f} ± {r[f'{o}_std']:.2f} " for o in others)
        peak_cell = ""
        if peaked:
            epoch = r.get("selected_epoch")
            peak_cell = "| - " if epoch is None else f"| {epoch:.1f} ({r['stopped_early']}/{r['seeds']}) "
        calibration_cells = ""
        for name, _, fmt in calibrated:
            mean, std = r.get(f"{name}_mean"), r.get(f"{name}_std")
            value = "-" if mean is None else f"{mean:{fmt}} ± {std:{fmt}}"
            calibration_cells += f"| {value} | {_cell(r.get(f'{name}_p_value'), '.2g')} "
        lines.append(
            f"| {r['method']} | {r['seeds']} {other_cells}"
            f"| {r['selected_mean']:.2f} ± {r['selected_std']:.2f} "
            f"| {r['selected_min']:.2f} | {r['selected_max']:.2f} "
            f"| {r['final_mean']:.2f} ± {r['final_std']:.2f} {peak_cell}"
            f"| {r['seconds_per_epoch']:.2f}{mixed} | {_cell(r['time_fraction'], '.2f')} "
            f"| {_cell(r.get('at_baseline_compute'), '.2f')} "
            f"| {r['auac']:{'.2f' if text else '.4f'}} | {_cell(r['p_value'], '.2g')} "
            f"{calibration_cells}|"
        )
    if any(r.get("at_baseline_compute") is not None for r in rows):
        lines.append(
            f"\nat {baseline}'s compute: each run's test score at its best dev check among those made "
            f"within the training FLOPs {baseline} needed for its best dev check (counted FLOPs, "
            "mean over seeds); '-' where a method's first check already costs more."
        )
    if peaked:
        lines.append(
            "\nbest dev at epoch: the mean epoch of the check each run selects; (k/n): the runs that "
            "early stopping ended, the others having reached train.epochs (or train.max_steps)."
        )
    if len({r.get("timing") for r in rows}) > 1:
        lines.append(
            "\ns / epoch: some runs trained side by side with other seeds (batched; each counted as 1/S "
            "of the group's time) and others alone; (mixed) marks a method with both. Compare times "
            "only between runs trained the same way."
        )
    if calibrated:
        lines.append(
            "\nECE %: the expected calibration error of the test predictions at the check each run "
            "selects (15 equal-width bins of the top softmax probability; 0-100, lower is better); "
            "NLL: their mean negative log-likelihood (nats per example, lower is better); mean ± std "
            f"over seeds, p: Welch's t-test against {baseline}; '-' for runs recorded without them."
        )
    base_row = next((r for r in rows if r["method"] == baseline), None)
    statistics_with_p = ["selected", *(name for name, _, _ in calibrated)]
    if any(no_spread(r, base_row, statistic) for r in rows for statistic in statistics_with_p):
        lines.append("\n" + NO_SPREAD_NOTE.format(baseline=baseline))
    if "test_macro_f1" in others:
        lines.append(
            "\ntest macro-F1: 0-100, higher is better: the mean over the classes (those present in the "
            "test set or predicted) of each class's F1, at the check each run selects."
        )
    if text:
        lines.append(
            f"\n{score}: 0-100, higher is better; (selected): on the test set at the check each run "
            f"selects (its best dev {score}); AUAC: the area under the test {score} curve over epochs, "
            f"divided by the epochs (the mean test {score} over training, on the same 0-100 scale)."
        )
    table = calibration_table(rows) if calibration else None
    if table is not None:
        lines.append("\n" + table.text())
    return "\n".join(lines)


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


def format_csv(rows: list[dict[str, Any]]) -> str:
    """The comparison table as CSV, one column per statistic."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
