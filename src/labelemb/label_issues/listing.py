"""The list a search for wrong labels leaves: every training row ranked from the most likely wrong
down, named as its file numbers it, with the summary beside it; written as CSV, JSON lines and
JSON, and shown as a few lines on the terminal.

Files in the list's folder: ``label_issues.csv`` and ``label_issues.jsonl`` (one row per training
row, ranked: :data:`COLUMNS`, then ``true_label`` and ``wrong`` where the truth is known),
``label_issues.json`` (the summary: estimated number of wrong rows, the noise matrix, the flagged
count, the judged figures, the folds' runs) and ``out_of_sample.npz`` (the probabilities the
detectors read: ``probabilities`` (N, m), ``labels``, ``fold``), so that anyone can call cleanlab
on them directly; ``label-issues.html``, the flagged rows to look at, is :mod:`.page`'s.

A tag set's list (:mod:`.tag_sets`) holds :data:`TAG_COLUMNS` instead: the given tags, the
suspected ones (likely wrong: given; likely missing: not given) and the tags its fold model
predicts, each a list in JSON and the tags joined by spaces in the CSV (as a tags column is read)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.report_noise import LABEL_ISSUES_PAGE
from ..data.origins import RowOrigins
from ..rundir.files import atomic_write, write_text
from .detectors import Detection, ranking
from .judging import judged_lines

#: The columns of every list, in order; the other detectors' scores (cleanlab's, then ``knn_vote``
#: where the run freezes its backbone) follow ``score``.
COLUMNS = ("rank", "file", "row", "given_label", "suggested_label", "score", "flagged", "fold")
LIST_CSV, LIST_JSONL, SUMMARY_JSON, PROBABILITIES_NPZ = (
    "label_issues.csv",
    "label_issues.jsonl",
    "label_issues.json",
    "out_of_sample.npz",
)
#: The columns of a tag set's list, in order; the other detectors' scores follow ``score``.
TAG_COLUMNS = (
    "rank",
    "file",
    "row",
    "given_tags",
    "suspected_wrong",
    "suspected_missing",
    "suggested_tags",
    "score",
    "flagged",
    "fold",
)
#: The rows shown on the terminal unless asked for more or fewer.
SHOWN = 10


@dataclass(repr=False)
class LabelIssues:
    """A ranked list of the training rows whose label is likely wrong (:func:`labelemb.find_label_issues`).

    ``rows`` is every training row, most suspected first, each a mapping of the list's columns;
    ``flagged`` how many the filter flagged, ``estimated_wrong`` cleanlab's estimate of the wrong
    rows, ``noise_matrix`` ``T[i, j]`` = P(given j | true i) over ``class_names``; ``judged`` the detectors'
    figures where the truth is known (else None); ``folder`` where the files are. For ``tag_sets``
    the rows hold :data:`TAG_COLUMNS`, ``class_names`` are the tags and ``noise_matrix`` is (K, 2):
    each tag's P(not given | carried) and P(given | not carried)."""

    rows: list[dict[str, Any]]
    flagged: int
    estimated_wrong: int
    noise_matrix: np.ndarray
    class_names: list[str]
    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)
    judged: dict[str, Any] | None = None
    tag_sets: bool = False

    def __repr__(self) -> str:
        return (
            f"LabelIssues(rows={len(self.rows)}, flagged={self.flagged}, "
            f"estimated_wrong={self.estimated_wrong}, folder={str(self.folder)!r})"
        )

    def top(self, count: int = SHOWN) -> list[dict[str, Any]]:
        """The ``count`` most suspected rows."""
        return self.rows[:count]

    def lines(self, count: int = SHOWN) -> list[str]:
        """What the terminal shows: the counts, the ``count`` most suspected rows, the judged
        figures where the truth is known, and where the files are."""
        lines = [
            f"{len(self.rows)} training rows: {self.flagged} flagged ({self.summary.get('filter')}), "
            f"about {self.estimated_wrong} wrong by cleanlab's estimate; most suspected first:"
        ]
        lines += [row_line(row) for row in self.top(count)]
        if self.judged is not None:
            lines += judged_lines(self.judged)
        lines.append(f"-> {self.folder / LIST_CSV}")
        if (self.folder / LABEL_ISSUES_PAGE).exists():
            lines.append(f"-> {self.folder / LABEL_ISSUES_PAGE} (the flagged rows to look at)")
        return lines


def row_line(row: dict[str, Any]) -> str:
    """One listed row as the terminal shows it: its place, its given label and the suggested one,
    or a tag set's given tags and its likely wrong and missing ones; its score."""
    place = row["file"] if row["row"] is None else f"{row['file']}, row {row['row']}"
    mark = "flagged" if row["flagged"] else "       "
    if "given_tags" in row:
        said = (
            f"given [{' '.join(row['given_tags'])}], likely wrong [{' '.join(row['suspected_wrong'])}], "
            f"likely missing [{' '.join(row['suspected_missing'])}]"
        )
    else:
        said = f"given {row['given_label']!r}, suggested {row['suggested_label']!r}"
    return f"  {row['rank']:>4}. {mark} {place}: {said} (score {row['score']:.3f})"


def listed_rows(
    detection: Detection,
    labels: np.ndarray,
    origins: RowOrigins,
    class_names: list[str],
    fold: np.ndarray,
    rank_by: str,
    clean: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Every training row as the list holds it, ranked by ``rank_by``'s score (lowest first)."""
    others = [name for name in detection.scores if name != rank_by]
    rows = []
    for rank, i in enumerate(ranking(detection.scores[rank_by]), start=1):
        row: dict[str, Any] = {
            "rank": rank,
            "file": origins.file(int(i)),
            "row": origins.row(int(i)),
            "given_label": class_names[int(labels[i])],
            "suggested_label": class_names[int(detection.suggested[i])],
            "score": float(detection.scores[rank_by][i]),
            **{name: float(detection.scores[name][i]) for name in others},
            "flagged": bool(detection.flagged[i]),
            "fold": int(fold[i]) + 1,
        }
        if clean is not None:
            row["true_label"] = class_names[int(clean[i])]
            row["wrong"] = bool(clean[i] != labels[i])
        rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, a list's items joined by spaces (tags, as a tags column reads)."""
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else value


def json_values(value: Any) -> Any:
    """``value`` with every float that is not finite as None (JSON has no NaN: a figure with no
    positive or no negative row to judge, such as an AUROC where no label is wrong, is null)."""
    if isinstance(value, dict):
        return {key: json_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_values(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_listing(
    issues: LabelIssues, probabilities: np.ndarray, labels: np.ndarray, fold: np.ndarray
) -> None:
    """The list's files in ``issues.folder`` (see the module docstring)."""
    folder = issues.folder
    folder.mkdir(parents=True, exist_ok=True)
    header = list(issues.rows[0]) if issues.rows else list(TAG_COLUMNS if issues.tag_sets else COLUMNS)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in issues.rows)
    write_text(folder / LIST_CSV, text.getvalue())
    lines = "".join(json.dumps(json_values(row), allow_nan=False) + "\n" for row in issues.rows)
    write_text(folder / LIST_JSONL, lines)
    summary = json.dumps(json_values(issues.summary), indent=1, allow_nan=False)
    write_text(folder / SUMMARY_JSON, summary + "\n")

    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, probabilities=probabilities, labels=labels, fold=fold)

    atomic_write(folder / PROBABILITIES_NPZ, save)
