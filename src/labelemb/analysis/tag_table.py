"""Trained on tag sets: the comparison's tables of what a tag run records beside its macro mAP,
from each run's summary at the check it selects (:mod:`labelemb.tasks.multi_label`): the other
ranking and threshold figures, on every test example and on the rest (those with a tag beyond the
ones ``tags.set_apart`` sets apart), and the calibration per tag, each with Welch's p against the
baseline.

A comparison of single-label runs has none of these keys and no table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..metrics.figures import figure, figure_of
from .beyond_error import TableBlock
from .tables import mean_std

#: The figures beside macro mAP (its micro-F1 and LRAP are the comparison table's columns).
TAG_FIGURES = ("map_micro", "f1_macro", "exact_match", "hamming", "rest_map_macro", "rest_f1_micro")
#: The marginal ECE of the tags on test: raw, after one temperature and after a temperature per
#: tag (both fit on dev), with the heads the table gives them.
TAG_CALIBRATION = {
    "tag_ece": "raw",
    "tag_ece_scaled": "one temperature",
    "tag_ece_per_tag": "a temperature per tag",
}


def tag_stem(name: str) -> str:
    """A tag figure's row key stem: ``tags_map_micro``."""
    return f"tags_{name}"


def tag_statistics(
    summaries: list[dict[str, Any]],
    base: list[dict[str, Any]] | None,
    welch_p: Callable[[list[float], list[float]], float | None],
) -> dict[str, Any]:
    """A method's row statistics of its runs' tag figures at their selected checks: each figure's
    mean, std and Welch's p against ``base`` (the baseline's summaries; None for the baseline
    itself). A figure some run lacks is left out; empty for runs that trained on single labels."""
    row: dict[str, Any] = {}
    for name in (*TAG_FIGURES, *TAG_CALIBRATION):
        values = [summary.get(f"selected_test_{name}") for summary in summaries]
        if any(value is None for value in values):
            continue
        stem = tag_stem(name)
        row[f"{stem}_mean"], row[f"{stem}_std"] = mean_std(values)
        against = [summary.get(f"selected_test_{name}") for summary in base or []]
        tested = base and all(value is not None for value in against)
        row[f"{stem}_p_value"] = welch_p(values, against) if tested else None
    return row


def _head(name: str) -> str:
    label = figure(name.removeprefix("rest_")).label
    return f"rest {label}" if name.startswith("rest_") else label


def _cells(row: dict[str, Any], name: str) -> list[str]:
    stem = tag_stem(name)
    mean, std, p = (row.get(f"{stem}_{part}") for part in ("mean", "std", "p_value"))
    fmt = (figure_of(name.removeprefix("rest_")) or figure(name)).fmt  # tag_ece_scaled: tag_ece's
    value = "-" if mean is None else f"{mean:{fmt}} ± {std:{fmt}}"
    return [value, "-" if p is None else f"{p:.2g}"]


def _markdown(rows: list[dict[str, Any]], names: list[str], heads: list[str]) -> str:
    columns = [part for head in heads for part in (head, "p")]
    lines = ["| method | " + " | ".join(columns) + " |", "| --- " + "| ---: " * len(columns) + "|"]
    for row in rows:
        cells = [cell for name in names for cell in _cells(row, name)]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tag_blocks(rows: list[dict[str, Any]], baseline: str) -> list[TableBlock]:
    """The tables of a tag comparison: the figures beside macro mAP, then the calibration per tag;
    none where no row has them. A column no row has a figure for is left out."""

    def held(names: Any) -> list[str]:
        return [n for n in names if any(r.get(f"{tag_stem(n)}_mean") is not None for r in rows)]

    figures, calibration = held(TAG_FIGURES), held(TAG_CALIBRATION)
    p_line = f"p: Welch's t-test against {baseline}, over seeds."
    blocks = []
    if figures:
        blocks.append(
            TableBlock(
                "Beside macro mAP, on test at the check each run selects (mean ± std over seeds):",
                _markdown(rows, figures, [_head(n) for n in figures]),
                [
                    "macro-F1 and exact match at the threshold chosen on dev; Hamming loss lower is "
                    "better, the others higher; rest: the test examples with a tag beyond the ones "
                    f"tags.set_apart sets apart. {p_line}"
                ],
            )
        )
    if calibration:
        blocks.append(
            TableBlock(
                "Calibration per tag on test (marginal ECE %, mean ± std over seeds):",
                _markdown(rows, calibration, [TAG_CALIBRATION[n] for n in calibration]),
                [
                    "marginal ECE: each tag's binary ECE over 15 bins, the mean over the tags, lower is "
                    "better; the temperatures (one for every tag, or one per tag) are fit on dev by the "
                    f"binary cross-entropy. {p_line}"
                ],
            )
        )
    return blocks
