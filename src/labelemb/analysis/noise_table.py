"""Trained on noisy labels: the comparison's table of what each method did with the wrong ones, from
each run's ``evaluation.json`` ``noise`` record (:mod:`labelemb.evaluation.run`): how many wrong
labels the selected and the final weights fitted, how many they predicted right, and how well the
loss finds them.

A comparison whose runs trained on right labels has none of these keys and no table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..metrics.figures import figure
from .beyond_error import TableBlock, figure_stem
from .tables import mean_std

#: The figures of a noisy run's record the table shows at each of its weights (their heads from
#: their declarations, :mod:`labelemb.metrics.figures`): record key -> whether with Welch's p.
NOISE_FIGURES = {"memorised": True, "flipped_correct": False, "detect_auroc_loss": True}
#: The weights a noisy run's record is of.
WEIGHTS = ("selected", "final")


def _head(key: str, weights: str) -> str:
    """A column's head: the figure's declared one, and the weights (``memorised %, selected``)."""
    return f"{figure(key).label}, {weights}"


def noise_stem(weights: str, key: str) -> str:
    """A noise figure's row key stem: ``noise_final_memorised``."""
    return f"noise_{weights}_{key}"


def noise_statistics(
    evaluations: list[dict[str, Any] | None],
    base: list[dict[str, Any] | None] | None,
    welch_p: Callable[[list[float], list[float]], float | None],
) -> dict[str, Any]:
    """A method's row statistics of its runs' noise records: the realised rate of wrong training
    labels, then each figure's mean, std and (where the table gives one) Welch's p against ``base``
    (the baseline's runs; None for the baseline itself). Empty where no run has a record."""
    row = _disputed_statistics(evaluations, base, welch_p)
    records = [None if e is None else e.get("noise") for e in evaluations]
    if not any(records):
        return row
    rates = [r["realised_rate"] for r in records if r]
    row["noise_rate_mean"] = mean_std(rates)[0] if len(rates) == len(records) else None
    base_records = None if base is None else [None if e is None else e.get("noise") for e in base]
    for weights in WEIGHTS:
        for key, with_p in NOISE_FIGURES.items():
            stem = noise_stem(weights, key)
            values = [_figure(r, weights, key) for r in records]
            row[f"{stem}_mean"] = row[f"{stem}_std"] = row[f"{stem}_p_value"] = None
            if any(v is None for v in values):
                continue
            row[f"{stem}_mean"], row[f"{stem}_std"] = mean_std(values)  # type: ignore[arg-type]
            against = [_figure(r, weights, key) for r in base_records or []]
            if with_p and base_records and all(v is not None for v in against):
                row[f"{stem}_p_value"] = welch_p(values, against)  # type: ignore[arg-type]
    return row


def _figure(record: dict[str, Any] | None, weights: str, key: str) -> float | None:
    value = (record or {}).get(weights, {}).get(key)
    return None if value is None else float(value)


def _cell(row: dict[str, Any], stem: str) -> str:
    mean, std = row.get(f"{stem}_mean"), row.get(f"{stem}_std")
    return "-" if mean is None else f"{mean:.2f} ± {std:.2f}"


def _p_cell(row: dict[str, Any], stem: str) -> str:
    p = row.get(f"{stem}_p_value")
    return "-" if p is None else f"{p:.2g}"


def noise_block(rows: list[dict[str, Any]], baseline: str) -> TableBlock | None:
    """The table of the wrong training labels; None where no row has noise figures."""
    if not any(r.get("noise_rate_mean") is not None for r in rows):
        return None
    rates = sorted({round(r["noise_rate_mean"], 2) for r in rows if r.get("noise_rate_mean") is not None})
    rate = " / ".join(f"{value:.2f} %" for value in rates)
    heads = [
        "clean-test error %",
        "final error %",
        _head("memorised", "selected"),
        "p",
        _head("memorised", "final"),
        _head("flipped_correct", "selected"),
        _head("detect_auroc_loss", "final"),
        "p",
        "APS coverage %",
        "APS set size",
    ]
    lines = ["| method | " + " | ".join(heads) + " |", "| --- " + "| ---: " * len(heads) + "|"]
    for r in rows:
        cells = [
            f"{r['selected_mean']:.2f} ± {r['selected_std']:.2f}",
            f"{r['final_mean']:.2f} ± {r['final_std']:.2f}",
            _cell(r, noise_stem("selected", "memorised")),
            _p_cell(r, noise_stem("selected", "memorised")),
            _cell(r, noise_stem("final", "memorised")),
            _cell(r, noise_stem("selected", "flipped_correct")),
            _cell(r, noise_stem("final", "detect_auroc_loss")),
            _p_cell(r, noise_stem("final", "detect_auroc_loss")),
            # The conformal sets, calibrated on dev (noisy, unless noise.dev is clean), on clean test labels.
            _cell(r, figure_stem("aps_coverage")),
            _cell(r, figure_stem("aps_size")),
        ]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    legend = (
        "memorised: the share of the wrongly labelled training examples the weights predict as their "
        "wrong label (lower is better); predicted right: the share they predict as their true class; "
        "AUROC of the loss: how well each training example's loss against its label tells the wrong "
        f"labels from the right ones (50 % is chance); p: Welch's t-test against {baseline}. The error "
        "columns are on the clean test labels, at the check each run selects and at its last; APS: "
        "the coverage and mean size, on the clean test labels, of the conformal sets calibrated for "
        "90 % on the dev split (as noisy as train unless noise.dev is clean)."
    )
    return TableBlock(
        f"Trained on noisy labels ({rate} of the training labels wrong), judged on clean ones "
        "(mean ± std over seeds; evaluation.json's noise):",
        "\n".join(lines),
        [legend],
    )


#: The figures of a run's disputed test labels: record key -> (head, Welch p).
DISPUTED_FIGURES = {
    "within_5": ("among the 5 % least confident %", True),
    "median_rank": ("median rank %", False),
    "auroc": ("AUROC %", True),
}


def _disputed_statistics(
    evaluations: list[dict[str, Any] | None],
    base: list[dict[str, Any] | None] | None,
    welch_p: Callable[[list[float], list[float]], float | None],
) -> dict[str, Any]:
    """Mean, std and Welch's p of each disputed-labels figure; empty where a run lacks them."""
    records = [None if e is None else e.get("disputed") for e in evaluations]
    if not records or not all(records):
        return {}
    base_records = None if base is None else [None if e is None else e.get("disputed") for e in base]
    row: dict[str, Any] = {}
    for key, (_, with_p) in DISPUTED_FIGURES.items():
        values = [float(r[key]) for r in records]  # type: ignore[index]
        row[f"disputed_{key}_mean"], row[f"disputed_{key}_std"] = mean_std(values)
        row[f"disputed_{key}_p_value"] = None
        if with_p and base_records and all(base_records):
            row[f"disputed_{key}_p_value"] = welch_p(values, [float(b[key]) for b in base_records])  # type: ignore[index]
    return row


def disputed_block(rows: list[dict[str, Any]], baseline: str) -> TableBlock | None:
    """Where each method ranks the test rows whose labels people disputed; None where no row has them."""
    if not any(r.get("disputed_auroc_mean") is not None for r in rows):
        return None
    heads = []
    for head, with_p in DISPUTED_FIGURES.values():
        heads += [head, "p"] if with_p else [head]
    lines = [
        "| method | error % | " + " | ".join(heads) + " |",
        "| --- " + "| ---: " * (len(heads) + 1) + "|",
    ]
    for r in rows:
        cells = [f"{r['selected_mean']:.2f} ± {r['selected_std']:.2f}"]
        for key, (_, with_p) in DISPUTED_FIGURES.items():
            cells.append(_cell(r, f"disputed_{key}"))
            if with_p:
                cells.append(_p_cell(r, f"disputed_{key}"))
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    legend = (
        "Each test row whose label people disputed is ranked among the test predictions by rising "
        "confidence (the max softmax of the selected weights; 0 % the least confident, 50 % chance): "
        "the share of them among the 5 % least confident, their median rank, and the AUROC of one "
        f"minus the confidence for telling them from the other rows; p: Welch's t-test against {baseline}."
    )
    return TableBlock(
        "The disputed test labels (the config's disputed_test_labels; mean ± std over seeds):",
        "\n".join(lines),
        [legend],
    )
