"""The table of a comparison of label methods as finders of wrong labels (:mod:`.comparison`): each
list's judged figures (:mod:`.judging`, read from its ``label_issues.json``) gathered over seeds,
as mean, standard deviation and Welch's p against the first method
(:func:`labelemb.analysis.compare.welch_p`, what ``labelemb compare`` reports), by detector and
then by method, so that the methods stand one under another for each detector."""

from __future__ import annotations

from typing import Any

from ..analysis.compare import mean_std, welch_p

#: A detector's figures, as :func:`.judging.judge` names them, and their columns.
DETECTOR_FIGURES = (
    "auroc",
    "auprc",
    "precision_at_true_count",
    "precision_at_estimate",
    "recall_at_estimate",
    "f1_at_estimate",
)
#: The filter's flagged set's figures (and a tag set's suspected pairs').
FLAGGED_FIGURES = ("count", "precision", "recall", "f1")
#: The row of the filter's flagged set, and of a tag set's (row, tag) pairs, in ``detector``.
FLAGGED, PAIRS = "flagged", "(row, tag) pairs"
#: The table's columns after detector and method: (title, a detector row's figure, a flagged row's).
COLUMNS = (
    ("AUROC", "auroc", "auroc"),
    ("AUPRC", "auprc", "auprc"),
    ("precision at the true count", "precision_at_true_count", "precision_at_true_count"),
    ("precision", "precision_at_estimate", "precision"),
    ("recall", "recall_at_estimate", "recall"),
    ("F1", "f1_at_estimate", "f1"),
    ("flagged", None, "count"),
)


def statistic(values: list[float | None], base: list[float | None] | None) -> dict[str, Any]:
    """``values`` (one a seed) with their mean, standard deviation and Welch's p against ``base``
    (the first method's; None for the first method itself, or a figure any seed lacks)."""
    if not values or any(value is None for value in values):
        return {"values": values, "mean": None, "std": None, "p": None}
    mean, std = mean_std(values)
    known = bool(base) and all(value is not None for value in base)
    return {"values": values, "mean": mean, "std": std, "p": welch_p(values, base) if known else None}


def minutes(summary: dict[str, Any]) -> float:
    """What a list cost: its folds' (and dynamics run's) training and scoring, in minutes."""
    return (float(summary.get("seconds") or 0.0) + float(summary.get("dynamics_seconds") or 0.0)) / 60.0


def comparison_rows(
    summaries: dict[tuple[str, int], dict[str, Any]], methods: list[str], seeds: list[int], judged: bool
) -> list[dict[str, Any]]:
    """The table's rows, by detector (then the flagged set, then a tag set's pairs) and within each
    by method: ``{"method", "detector", "figures": {name: statistic}}``; unjudged, each method's
    flagged count, cleanlab's estimate of the wrong rows and the minutes."""
    figures: dict[tuple[str, str], dict[str, list[Any]]] = {}
    order: list[str] = []
    for method in methods:
        for seed in seeds:
            summary = summaries[(method, seed)]
            for detector, values in _figures(summary, judged).items():
                if detector not in order:
                    order.append(detector)
                cell = figures.setdefault((detector, method), {})
                for name, value in {**values, "minutes": minutes(summary)}.items():
                    cell.setdefault(name, []).append(value)
    rows = []
    for detector in order:
        base = figures.get((detector, methods[0]), {})
        for method in methods:
            if (detector, method) not in figures:
                continue
            own = figures[(detector, method)]
            against = None if method == methods[0] else base
            stats = {name: statistic(values, (against or {}).get(name)) for name, values in own.items()}
            rows.append({"method": method, "detector": detector, "figures": stats})
    return rows


def _figures(summary: dict[str, Any], judged: bool) -> dict[str, dict[str, Any]]:
    """One list's figures by row of the table: each detector's, its flagged set's, a tag set's pairs'."""
    if not judged:
        return {FLAGGED: {"count": summary["flagged"], "estimated_wrong": summary["estimated_wrong"]}}
    truth = summary["judged"]
    rows = {
        detector: {name: values.get(name) for name in DETECTOR_FIGURES}
        for detector, values in truth["detectors"].items()
    }
    flagged = truth["flagged"]
    rows[FLAGGED] = {
        **{name: flagged.get(name) for name in FLAGGED_FIGURES},
        "estimated_wrong": truth["estimated_wrong"],
    }
    if "pairs" in truth:
        pairs = truth["pairs"]
        rows[PAIRS] = {
            **{name: pairs.get(name) for name in ("auroc", "auprc", "precision_at_true_count")},
            **{name: pairs["suspected"].get(name) for name in FLAGGED_FIGURES},
        }
    return rows


def markdown_table(
    rows: list[dict[str, Any]], methods: list[str], seeds: list[int], judged: bool, settings: dict[str, Any]
) -> str:
    """The rows as a Markdown page: what was compared, the table (each cell mean ± std over seeds,
    with p against the first method), and how to read it."""
    seeds_text = ", ".join(map(str, seeds))
    lines = [
        f"# Wrong labels found by each label method: {settings.get('data')}",
        "",
        f"{settings.get('folds')}-fold cross-fitted lists of {', '.join(methods)}; seeds {seeds_text}; "
        f"ranked by {settings.get('rank_by')}, flagged by {settings.get('filter_by')}; split "
        f"{settings.get('split')}. Each cell: mean ± standard deviation over the {len(seeds)} seed(s)"
        + (f"; (p ...) Welch's t-test against {methods[0]}." if len(methods) > 1 else "."),
        "",
    ]
    if not judged:
        lines += ["| method | flagged | estimated wrong | minutes |", "| --- | --- | --- | --- |"]
        for row in rows:
            cells = [
                _cell(row["figures"][name], row["method"] == methods[0], 0)
                for name in ("count", "estimated_wrong")
            ]
            lines.append(f"| {row['method']} | {' | '.join(cells)} | {_minutes(row)} |")
        return "\n".join(lines) + "\n"
    titles = " | ".join(title for title, _, _ in COLUMNS)
    lines += [f"| detector | method | {titles} | minutes |", "| --- " * (len(COLUMNS) + 3) + "|"]
    for row in rows:
        flagged_row = row["detector"] in (FLAGGED, PAIRS)
        cells = []
        for _, detector_key, flagged_key in COLUMNS:
            key = flagged_key if flagged_row else detector_key
            figure = row["figures"].get(key) if key else None
            digits = 0 if key == "count" else 1  # a count of rows, whole
            cells.append("" if figure is None else _cell(figure, row["method"] == methods[0], digits))
        name = f"flagged by {settings.get('filter_by')}" if row["detector"] == FLAGGED else row["detector"]
        lines.append(f"| {name} | {row['method']} | {' | '.join(cells)} | {_minutes(row)} |")
    lines += [
        "",
        "Figures in percent, a wrong label the positive class. A detector's precision, recall and F1 "
        "are those of its lowest-scored rows, as many as cleanlab estimates wrong; the flagged row's "
        "are the filter's flagged set's. Minutes: each list's folds (and dynamics run), trained and "
        "scored; a list read back keeps the minutes it took when it was made.",
    ]
    return "\n".join(lines) + "\n"


def _cell(figure: dict[str, Any], first: bool, digits: int) -> str:
    """``mean ± std`` and, after the first method, ``(p ...)`` (``-`` where p cannot be had)."""
    if figure["mean"] is None:
        return "-"
    text = f"{figure['mean']:.{digits}f} ± {figure['std']:.{digits}f}"
    if first:
        return text
    return text + (" (p -)" if figure["p"] is None else f" (p {figure['p']:.2g})")


def _minutes(row: dict[str, Any]) -> str:
    figure = row["figures"]["minutes"]
    return f"{figure['mean']:.2f} ± {figure['std']:.2f}"
