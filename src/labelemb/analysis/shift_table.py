"""Under shift: the comparison's table of each run's ``shift.json`` (:mod:`labelemb.evaluation.shift`),
its statistics rows and its Markdown block.

Every figure is averaged over the conditions (a corruption at a severity) that every shifted run
of the comparison has, so that methods are compared on the same inputs; the conditions some runs
lack are named under the table. A run without the record (trained before runs were shifted, or
not shifted yet) gives "-": ``labelemb shift`` adds it from the run's saved weights.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..metrics.figures import SPLIT_FIGURES, figure
from ..metrics.shift import mean_corruption_error
from .beyond_error import TableBlock
from .tables import mean_std

#: The figures the table averages over the conditions (of shift.json's, the declared
#: :data:`~labelemb.metrics.figures.SPLIT_FIGURES`): record key -> row statistic stem.
CONDITION_FIGURES = {name: f"shift_{name}" for name in SPLIT_FIGURES if not name.startswith("nll")}
CLEAN_ERROR = "shift_clean_error"
MCE = "shift_mce"
#: What the rows say of the conditions they average over (the same in every row).
CONDITIONS, CORRUPTIONS, LEFT_OUT = "shift_conditions", "shift_corruptions", "shift_left_out"

Record = dict[str, Any]


@dataclass(frozen=True)
class SharedConditions:
    """The conditions every shifted run of a comparison has (``keys``, ``rotate@2``, by corruption
    then severity), each one's corruption and severity, and those only some runs have."""

    keys: list[str]
    corruption: dict[str, str]
    severity: dict[str, int]
    left_out: list[str]

    @property
    def corruptions(self) -> list[str]:
        """The corruptions of the shared conditions, each once, by name."""
        return sorted(set(self.corruption.values()))


def shared_conditions(records: Iterable[Record | None]) -> SharedConditions | None:
    """The :class:`SharedConditions` of the runs' shift ``records`` (None for a run without one);
    None where no run has one."""
    held = [r.get("conditions", {}) for r in records if r is not None]
    if not held:
        return None
    every = set.intersection(*(set(conditions) for conditions in held))
    entries = {key: entry for conditions in held for key, entry in conditions.items()}
    corruption = {key: str(entries[key]["corruption"]) for key in every}
    severity = {key: int(entries[key]["severity"]) for key in every}
    keys = sorted(every, key=lambda key: (corruption[key], severity[key]))
    left_out = sorted(set(entries) - every)
    return SharedConditions(keys, corruption, severity, left_out)


def condition_mean(record: Record, keys: list[str], name: str) -> float:
    """The mean of figure ``name`` (``error``, ``ece``...) over the conditions ``keys`` of
    ``record``, in its declared unit (:mod:`labelemb.metrics.figures`)."""
    return statistics.fmean(float(record["conditions"][key][name]) for key in keys)


def shift_statistics(
    records: list[Record | None],
    base: list[Record | None] | None,
    shared: SharedConditions | None,
    welch_p: Callable[[list[float], list[float]], float | None],
    with_p: bool,
) -> dict[str, Any]:
    """A method's row statistics of its runs' shift ``records`` over the ``shared`` conditions:
    the clean error and each of :data:`CONDITION_FIGURES` (mean and std over seeds), Welch's p of
    the error under shift against ``base`` (the baseline's records; with ``with_p``) and the mCE
    against it. Every key is present (None where a run lacks its record), so that every row of a
    comparison has the same columns."""
    error_p = f"{CONDITION_FIGURES['error']}_p_value"
    row: dict[str, Any] = {}
    for stem in (CLEAN_ERROR, *CONDITION_FIGURES.values()):
        row[f"{stem}_mean"] = row[f"{stem}_std"] = None
    row[error_p] = row[MCE] = None
    row[CONDITIONS] = None if shared is None else len(shared.keys)
    row[CORRUPTIONS] = None if shared is None else len(shared.corruptions)
    row[LEFT_OUT] = None if shared is None else " ".join(shared.left_out)
    if shared is None or not records or any(r is None for r in records):
        return row
    shifted: list[Record] = records  # type: ignore[assignment]
    row[f"{CLEAN_ERROR}_mean"], row[f"{CLEAN_ERROR}_std"] = mean_std([r["clean"]["error"] for r in shifted])
    if not shared.keys:
        return row
    keys = shared.keys
    for name, stem in CONDITION_FIGURES.items():
        row[f"{stem}_mean"], row[f"{stem}_std"] = mean_std([condition_mean(r, keys, name) for r in shifted])
    if not base or any(b is None for b in base):
        return row
    against: list[Record] = base  # type: ignore[assignment]
    if with_p:
        errors = [condition_mean(r, keys, "error") for r in shifted]
        row[error_p] = welch_p(errors, [condition_mean(b, keys, "error") for b in against])
    row[MCE] = mean_corruption_error(_seed_mean_errors(shifted, shared), _seed_mean_errors(against, shared))
    return row


def _seed_mean_errors(records: list[Record], shared: SharedConditions) -> dict[tuple[str, int], float]:
    """(corruption, severity) -> the error there, the mean over the runs' ``records``."""
    return {
        (shared.corruption[key], shared.severity[key]): statistics.fmean(
            float(r["conditions"][key]["error"]) for r in records
        )
        for key in shared.keys
    }


LEGEND = (
    "clean: the test error of the selected weights (shift.json's clean split); under shift: the mean "
    "of each run's error over the conditions, mean ± std over seeds (p: Welch's t-test against "
    "{baseline}); mCE: Hendrycks & Dietterich's mean corruption error with {baseline} as the "
    "baseline (for each corruption, the sum over its severities of the method's error, mean over "
    "seeds, divided by the same sum of {baseline}'s; x 100, averaged over the corruptions; "
    "{baseline} = 100, lower is better; '-' without {baseline}); ECE raw -> scaled by the "
    "temperature fit on the clean dev split, and the AURC of the max-softmax confidence: means over "
    "the conditions and seeds. '-': a run without shift.json (labelemb shift adds it)."
)


def shift_block(rows: list[dict[str, Any]], baseline: str) -> TableBlock | None:
    """The under-shift table with its lines; None where no run of the comparison was shifted."""
    if not any(r.get(CONDITIONS) is not None for r in rows):
        return None
    error, ece, aurc = figure("error").label, figure("ece").label, figure("aurc").label
    lines = [
        f"| method | clean {error} | {error} under shift | p vs {baseline} | mCE "
        f"| {ece} -> scaled | {aurc} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(_cells(r)) + " |")
    return TableBlock(
        "Under shift: each run's selected weights on corrupted copies of its test split (shift.json):",
        "\n".join(lines),
        [conditions_line(rows[0]), LEGEND.format(baseline=baseline)],
    )


def _cells(r: dict[str, Any]) -> list[str]:
    p, mce = r.get(f"{CONDITION_FIGURES['error']}_p_value"), r.get(MCE)
    ece, scaled = r.get("shift_ece_mean"), r.get("shift_ece_scaled_mean")
    aurc = r.get("shift_aurc_mean")
    return [
        _mean_std(r, CLEAN_ERROR),
        _mean_std(r, CONDITION_FIGURES["error"]),
        "-" if p is None else f"{p:.2g}",
        "-" if mce is None else f"{mce:.1f}",
        "-" if ece is None or scaled is None else f"{ece:.2f} -> {scaled:.2f}",
        "-" if aurc is None else f"{aurc:.2f}",
    ]


def _mean_std(r: dict[str, Any], stem: str) -> str:
    mean, std = r.get(f"{stem}_mean"), r.get(f"{stem}_std")
    return "-" if mean is None else f"{mean:.2f} ± {std:.2f}"


def conditions_line(row: dict[str, Any]) -> str:
    """What the figures average over: how many conditions and corruptions, and which conditions
    were left out because not every shifted run has them."""
    count, corruptions, left_out = row[CONDITIONS], row[CORRUPTIONS], (row[LEFT_OUT] or "").split()
    if count == 0:
        line = "No condition is in every shifted run's shift.json: only the clean error is compared."
    else:
        line = (
            "Means over the conditions that every shifted run has "
            f"(conditions: {count}, corruptions: {corruptions})."
        )
    if left_out:
        line += f" Left out, as not every run has them: {', '.join(left_out)}."
    return line
