"""The linear reference beside a comparison's methods (issue 100): a linear SVM and logistic
regression on TF-IDF, fitted by scikit-learn on the comparison's splits
(:mod:`labelemb.evaluation.linear_reference` writes the record, :data:`REFERENCE_FILE` in the
experiment folder), shown as rows of the comparison's tables, marked as a reference: each is one
fit, not seeds of a method, so it has no spread, no p-value and no rank.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metrics.figures import figure, figure_of
from ..tasks.scoring import TEST_ERROR, Scoring
from .beyond_error import TableBlock
from .tag_table import TAG_CALIBRATION, TAG_FIGURES, tag_stem

#: The record's file in the experiment folder, and its format (a record of another is fitted anew).
REFERENCE_FILE = "reference.json"
REFERENCE_FORMAT = 1
#: The calibration figures of a model that gives probabilities: (the record's key, the row's stem).
CALIBRATION = (("test_ece", "ece"), ("test_nll", "nll"))


@dataclass(frozen=True)
class ReferenceRow:
    """One fitted model: its ``name`` (``linear SVM``), the labels it was trained on (``trained``:
    as the runs saw them; ``clean``: the clean ones of noisy training labels), the ``C`` chosen on
    dev, its test ``figures`` (the runs' keys, ``test_error``) and the seconds its grid took."""

    name: str
    labels: str
    c: float
    figures: dict[str, float]
    seconds: float
    #: The dev figure C was chosen by, at each C of the grid (by C as text).
    dev: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Its name in a table: ``linear SVM (TF-IDF, reference)``."""
        clean = ", clean labels" if self.labels == "clean" else ""
        return f"{self.name} (TF-IDF{clean}, reference)"

    def statistics(self, scoring: Scoring) -> dict[str, Any]:
        """Its figures as a comparison row's statistics (``selected_mean``, ``test_macro_f1_mean``,
        ``ece_mean``, ``tags_map_micro_mean``): what the tables and the ranks read."""
        figures = self.figures
        row: dict[str, Any] = {"method": self.label, "selected_mean": figures.get(scoring.metric)}
        row.update({f"{key}_mean": figures.get(key) for key, _ in scoring.reported})
        row.update({f"{stem}_mean": figures.get(key) for key, stem in CALIBRATION})
        for name in (*TAG_FIGURES, *TAG_CALIBRATION):
            row[f"{tag_stem(name)}_mean"] = figures.get(f"test_{name}")
        return {key: value for key, value in row.items() if value is not None}


@dataclass(frozen=True)
class Reference:
    """A comparison's reference: its rows, how its figure reads (``scoring``), the number of TF-IDF
    terms, what chose C on dev (``selection``), whether the runs trained on noisy labels, and the
    seconds it took (features and every fit)."""

    rows: list[ReferenceRow]
    scoring: Scoring
    terms: int
    selection: str
    noisy: bool
    seconds: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Reference:
        """The reference a record holds (a KeyError or TypeError for one that is not a record)."""
        rows = [
            ReferenceRow(
                r["name"], r["labels"], float(r["C"]), dict(r["figures"]), float(r["seconds"]), dict(r["dev"])
            )
            for r in record["rows"]
        ]
        seconds = float(record["feature_seconds"]) + sum(row.seconds for row in rows)
        scoring = Scoring.from_record(record["scoring"]) if "scoring" in record else TEST_ERROR
        return cls(
            rows, scoring, int(record["terms"]), str(record["selection"]), bool(record["noisy"]), seconds
        )

    def note(self) -> str:
        """What the reference rows are, in one paragraph under a table."""
        chosen = ", ".join(f"{row.name} {row.c:g}" for row in self.rows if row.labels == "trained")
        noisy = (
            "; trained on the runs' noisy training labels (and, marked clean labels, on the clean "
            "ones), judged on the clean test labels"
            if self.noisy
            else ""
        )
        return (
            "(TF-IDF, reference): not a method but scikit-learn's linear SVM and logistic regression "
            f"(one-vs-rest for tags) on TF-IDF of words and word pairs ({self.terms:,} terms, fitted on "
            f"the training texts), fitted once on the same splits{noisy}; C chosen by "
            f"{self.selection} ({chosen}); {self.seconds:.1f} s in all. One fit: no spread, p-value or "
            "rank; turn it off with --no-reference."
        )


def read_reference(experiment_dir: str | Path) -> Reference | None:
    """The reference kept in ``experiment_dir``, or None where there is none or it is not one
    this code reads (:mod:`labelemb.evaluation.linear_reference` writes it anew then)."""
    path = Path(experiment_dir) / REFERENCE_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != REFERENCE_FORMAT:
            return None
        return Reference.from_record(record)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def with_reference(text: str, reference: Reference | None, scoring: Scoring | None = None) -> str:
    """``text`` (a comparison's Markdown, its first table the methods') with a row for each of the
    reference's models after the methods' rows, and the note on them after the table: each cell
    under a head that names one of its figures (the score, a reported figure, ECE, NLL), "-"
    elsewhere. ``text`` as it is without a reference."""
    if reference is None or not reference.rows:
        return text
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return text
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    heads = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    scoring = scoring or reference.scoring
    score = f"{scoring.score_name} {scoring.unit}".strip()
    noisy = [head for head in heads if head.startswith(f"{score} at ") and head.endswith("wrong labels")]
    cells = _head_figures(scoring, noisy)
    added = [_line(row, heads, cells) for row in reference.rows]
    return "\n".join([*lines[:end], *added, "", reference.note(), *lines[end:]])


def _head_figures(scoring: Scoring, noisy_heads: list[str]) -> dict[str, str]:
    """The figure key each head of a comparison table shows (the terminal's, comparison.md's and
    the ranks')."""
    column = scoring.column()
    heads = {f"{column} (selected)": scoring.metric, column: scoring.metric}
    heads.update(
        {f"{name}{selected}": key for key, name in scoring.reported for selected in ("", " (selected)")}
    )
    # A noisy comparison's ranks head their score by the share of wrong labels it trained on.
    heads.update({head: scoring.metric for head in noisy_heads})
    for key, name in CALIBRATION:
        label = figure(name).label
        heads.update({f"{label} (selected)": key, label: key, f"{label} -> scaled": key})
    return heads


def _line(row: ReferenceRow, heads: list[str], cells: dict[str, str]) -> str:
    values = []
    for head in heads:
        value = row.figures.get(cells[head]) if head in cells else None
        if head == "method":
            values.append(row.label)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            values.append("-")
        else:
            declared = figure_of(cells[head].removeprefix("test_"))
            values.append(format(value, declared.fmt if declared else ".2f"))
    return "| " + " | ".join(values) + " |"


def reference_blocks(reference: Reference | None) -> list[TableBlock]:
    """How the reference chose its C (the report shows it under the comparison): per model, the
    labels it trained on, the dev figure at each C of its grid, the C chosen and the seconds its
    fits took; none without a reference."""
    if reference is None or not reference.rows:
        return []
    lines = [
        f"| reference | trained on | {reference.selection} at each C | C chosen | seconds |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for row in reference.rows:
        trained = "the clean labels" if row.labels == "clean" else "the runs' labels"
        grid = ", ".join(f"{c}: {value:.2f}" for c, value in row.dev.items())
        lines.append(f"| {row.label} | {trained} | {grid} | {row.c:g} | {row.seconds:.1f} |")
    intro = f"The linear reference: its C chosen on dev ({reference.terms:,} TF-IDF terms)."
    return [TableBlock(intro, "\n".join(lines), [reference.note()])]


def reference_csv(rows: list[dict[str, Any]], reference: Reference | None) -> str:
    """The reference's rows as lines of comparison.csv (whose columns the methods' ``rows``
    decide): the method cell names the model, the figures it has in their columns, the others
    empty. Empty without a reference."""
    if reference is None or not reference.rows or not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), restval="", extrasaction="ignore")
    writer.writerows(row.statistics(reference.scoring) for row in reference.rows)
    return buffer.getvalue()
