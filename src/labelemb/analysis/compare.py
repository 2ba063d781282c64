"""A comparison of methods over seeds: its rows of statistics, read from run folders (shown by
:mod:`~labelemb.analysis.comparison_table`)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..rundir import SUMMARY_FILE, run_dirs
from ..tasks.registry import recorded_scoring
from ..tasks.scoring import TEST_ERROR, Scoring
from .beyond_error import beyond_error_statistics, ood_sets
from .calibration_table import (
    CALIBRATION_COLUMNS,
    TEMPERATURE,
    calibration_statistics,
    recalibration_statistics,
)
from .noise_table import noise_statistics
from .shift_table import shared_conditions, shift_statistics
from .tag_table import tag_statistics

BASELINE = "onehot"


def reported_metric(summary: dict[str, Any]) -> Scoring:
    """How a run's figure reads (``summary["scoring"]``, recorded by its task)."""
    return recorded_scoring(summary)


@dataclass
class Run:
    """One finished (method, seed) run: its summary and its evaluation and shift records."""

    method: str
    seed: int
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    #: Its ``evaluation.json`` (selective classification, conformal sets, OOD), or None.
    evaluation: dict[str, Any] | None = None
    #: Its ``shift.json`` (the figures under each corruption and severity), or None.
    shift: dict[str, Any] | None = None


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
            Run(
                summary["method"],
                summary["seed"],
                summary,
                records,
                folder.read_evaluation(),
                folder.read_shift(),
            )
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
    sets = ood_sets([r.evaluation for method_runs in runs.values() for r in method_runs])
    base_evaluations = [r.evaluation for r in base_runs] if base_runs else None
    shared = shared_conditions(r.shift for method_runs in runs.values() for r in method_runs)
    base_shifts = [r.shift for r in base_runs] if base_runs else None
    base_summaries = [r.summary for r in base_runs] if base_runs else None
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
        row.update(recalibration_statistics([r.evaluation for r in method_runs]))
        against = base_evaluations if method != baseline else None
        row.update(beyond_error_statistics([r.evaluation for r in method_runs], against, welch_p, sets))
        shifts = [r.shift for r in method_runs]
        row.update(shift_statistics(shifts, base_shifts, shared, welch_p, with_p=method != baseline))
        row.update(noise_statistics([r.evaluation for r in method_runs], against, welch_p))
        tag_base = base_summaries if method != baseline else None
        row.update(tag_statistics([r.summary for r in method_runs], tag_base, welch_p))
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
