"""The page a search for wrong labels leaves beside its list, ``label-issues.html``: the flagged rows,
most likely wrong first, to look at rather than read. One file that opens offline: its style inline,
no script, every picture a PNG embedded as a ``data:`` URI.

Its header gives the counts (training rows, flagged rows, cleanlab's estimate of the wrong ones), the
noise matrix as a small table (or, for many classes, its largest confusions) and, where the truth is
known, the judged figures. Then the flagged rows, at most :data:`PAGE_ROWS` of them: an image data
set's as a grid of thumbnails drawn from the data set's own images, each captioned with its row in
its file, given -> suggested label and score; a text data set's as a table of their texts (cut to
:data:`TEXT_CHARS` characters); any other data set's as a table without inputs. A tag set's page
shows each row's given tags beside the ones likely wrong and likely missing, and, in place of the
noise matrix, the tags most often missing and most often wrong by cleanlab's estimate."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image  # Pillow comes with matplotlib, one of labelemb's own requirements

from ..analysis.report_html import CSS, escape, png_data_uri
from ..analysis.report_noise import LABEL_ISSUES_PAGE
from ..data import Dataset
from ..rundir.files import write_text
from ..version import __version__
from .listing import LIST_CSV, SUMMARY_JSON, LabelIssues

#: The most flagged rows a page shows unless asked for more or fewer.
PAGE_ROWS = 100
#: The characters of a text shown before it is cut.
TEXT_CHARS = 300
#: The largest side, in pixels, of an image as the page stores it (larger images are shrunk).
THUMBNAIL = 96
#: The most classes whose noise matrix is shown whole; beyond, its largest confusions are.
MATRIX_CLASSES = 12
#: How many of the largest confusions are shown where the matrix is too large to show whole.
CONFUSIONS = 10

#: The page's own style, after the report's: the grid of thumbnails, small images shown pixel-sharp.
GRID_CSS = """
.grid { display: flex; flex-wrap: wrap; gap: 0.6em; }
.grid figure { margin: 0; width: 120px; font-size: 0.8em; text-align: center; }
.grid img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; margin: 0 auto; }
.grid figcaption span.file { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
td.text { max-width: 40em; }
"""


def write_page(
    issues: LabelIssues, order: Sequence[int] | np.ndarray, dataset: Dataset, *, shown: int = PAGE_ROWS
) -> Path:
    """Write ``issues.folder/label-issues.html`` (:func:`page_html`) and return its path."""
    path = issues.folder / LABEL_ISSUES_PAGE
    write_text(path, page_html(issues, order, dataset, shown=shown))
    return path


def page_html(
    issues: LabelIssues, order: Sequence[int] | np.ndarray, dataset: Dataset, *, shown: int = PAGE_ROWS
) -> str:
    """The page of ``issues``: ``order[r]`` is the training split's index of ``issues.rows[r]`` (the
    list's ranking), so that each shown row's input is read from ``dataset.train``; at most
    ``shown`` flagged rows are shown."""
    if isinstance(shown, bool) or not isinstance(shown, int) or shown < 1:
        raise ValueError(f"shown={shown!r}: the page shows a positive number of rows (default {PAGE_ROWS})")
    if len(order) != len(issues.rows):
        raise ValueError(
            f"{len(order)} training indices for {len(issues.rows)} listed rows: pass the list's ranking"
        )
    flagged = [(row, int(index)) for row, index in zip(issues.rows, order) if row["flagged"]]
    picked = flagged[:shown]
    summary = issues.summary
    title = f"Likely wrong labels: {summary.get('data', dataset.name)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}{GRID_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="made">{escape(_made(summary))}</p>',
        f"<p>{escape(_counts(issues))}</p>",
        "</header>",
        *(
            _tag_noise_section(issues.noise_matrix, issues.class_names)
            if issues.tag_sets
            else _noise_section(issues.noise_matrix, issues.class_names)
        ),
        *_judged_section(issues.judged),
        '<section id="flagged">',
        "<h2>The flagged rows</h2>",
        f"<p>{escape(_shown_line(len(picked), len(flagged), shown, summary, issues.tag_sets))}</p>",
        *(_tag_rows_view(picked, dataset) if issues.tag_sets else _rows_view(picked, dataset)),
        "</section>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _made(summary: dict[str, Any]) -> str:
    """Which search made the list."""
    return (
        f"Made by labelemb {__version__}'s label-issues: {summary.get('method')} fold models, "
        f"{summary.get('folds')} folds, seed {summary.get('seed')}; ranked by {summary.get('rank_by')}, "
        f"flagged by cleanlab's {summary.get('filter')} filter. Every row is in {LIST_CSV} beside "
        f"this page, the summary in {SUMMARY_JSON}."
    )


def _counts(issues: LabelIssues) -> str:
    return (
        f"{len(issues.rows):,} training rows; {issues.flagged:,} flagged; about "
        f"{issues.estimated_wrong:,} wrong by cleanlab's estimate."
    )


def _shown_line(count: int, flagged: int, shown: int, summary: dict[str, Any], tag_sets: bool = False) -> str:
    """What the rows below are, and where the cap left some out."""
    if flagged == 0:
        return "No row is flagged."
    said = (
        "the given tags are the file's; a tag likely wrong is given but improbable to the model that did "
        "not train on the row, one likely missing is not given but probable"
        if tag_sets
        else "given → suggested is the file's label and the one the models rank first"
    )
    scored = (
        f"The score is that of the detector ranking the list, {summary.get('rank_by')} (the lower, "
        f"the more likely wrong); {said}."
    )
    if count < flagged:
        return (
            f"The first {count:,} of the {flagged:,} flagged rows, most likely wrong first (the page "
            f"shows at most {shown:,}; {LIST_CSV} lists them all). {scored}"
        )
    return f"All {flagged:,} flagged rows, most likely wrong first. {scored}"


def _table(header: Sequence[str], body: Sequence[Sequence[Any]], classes: Sequence[str] = ()) -> list[str]:
    """An HTML table, every cell escaped; ``classes[i]`` is column i's class (``num``, ``text``)."""

    def row(cells: Sequence[Any], tag: str) -> str:
        out = []
        for i, value in enumerate(cells):
            kind = classes[i] if i < len(classes) and classes[i] else ""
            attr = f' class="{kind}"' if kind else ""
            out.append(f"<{tag}{attr}>{escape(value)}</{tag}>")
        return "<tr>" + "".join(out) + "</tr>"

    return [
        "<table>",
        "<thead>" + row(header, "th") + "</thead>",
        "<tbody>",
        *(row(r, "td") for r in body),
        "</tbody>",
        "</table>",
    ]


def _noise_section(matrix: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """The estimated noise matrix, whole for a few classes, else its largest confusions."""
    matrix = np.asarray(matrix, dtype=np.float64)
    parts = ['<section id="noise-matrix">', "<h2>The estimated noise matrix</h2>"]
    if len(class_names) <= MATRIX_CLASSES:
        parts.append(
            "<p>Row: the true class; column: the label given; each cell P(given | true), cleanlab's "
            "estimate, each row summing to 1.</p>"
        )
        body = [[name, *(f"{value:.3f}" for value in matrix[i])] for i, name in enumerate(class_names)]
        parts += _table(["true \\ given", *class_names], body, ["", *("num",) * len(class_names)])
    else:
        off = matrix.copy()
        np.fill_diagonal(off, -np.inf)
        largest = np.argsort(off, axis=None, kind="stable")[::-1][:CONFUSIONS]
        body = [
            [class_names[i], class_names[j], f"{matrix[i, j]:.3f}"]
            for i, j in (np.unravel_index(k, matrix.shape) for k in largest)
        ]
        parts.append(
            f"<p>{len(class_names)} classes: the {len(body)} largest of P(given | true) off the diagonal, "
            f"cleanlab's estimate (the whole matrix is in {SUMMARY_JSON}).</p>"
        )
        parts += _table(["true class", "given label", "P(given | true)"], body, ["", "", "num"])
    return [*parts, "</section>"]


def _figure(value: Any) -> str:
    """A judged figure in percent, or a dash where there is nothing to judge (None, NaN)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.1f} %"


def _judged_section(judged: dict[str, Any] | None) -> list[str]:
    """The figures against the known truth; nothing where it is not known."""
    if judged is None:
        return []
    flagged = judged.get("flagged", {})
    precision, recall, f1 = (_figure(flagged.get(key)) for key in ("precision", "recall", "f1"))
    wrong = "rows carry a wrong tag set" if "pairs" in judged else "labels are wrong"
    line = (
        f"The truth is known: {judged.get('wrong'):,} of the {judged.get('rows'):,} training {wrong}. "
        f"The {flagged.get('count', 0):,} flagged rows ({flagged.get('filter')}): precision "
        f"{precision}, recall {recall}, F1 {f1}."
    )
    body = [
        [name, _figure(f.get("auroc")), _figure(f.get("auprc")), _figure(f.get("precision_at_true_count"))]
        for name, f in judged.get("detectors", {}).items()
    ]
    header = ["detector", "AUROC", "AUPRC", "precision at the true count"]
    return [
        '<section id="judged">',
        "<h2>Judged against the truth</h2>",
        f"<p>{escape(line)}</p>",
        *_table(header, body, ["", "num", "num", "num"]),
        "</section>",
    ]


def _rows_view(picked: list[tuple[dict[str, Any], int]], dataset: Dataset) -> list[str]:
    """The shown rows: a grid of thumbnails for images, else a table (with the texts where there are)."""
    if not picked:
        return []
    if dataset.yields == "images" and dataset.train.inputs.dim() == 4:
        return _image_grid(picked, dataset.train.inputs)
    texts = getattr(dataset, "texts", {}).get("train")
    several = len({row["file"] for row, _ in picked}) > 1
    truth = "true_label" in picked[0][0]
    header = ["rank", *(["file"] if several else []), "row", *(["text"] if texts else [])]
    header += ["given", "suggested", "score", *(["true label"] if truth else [])]
    body = []
    for row, index in picked:
        cells: list[Any] = [row["rank"], *([row["file"]] if several else []), _number(row)]
        cells += [_cut(texts[index])] if texts else []
        cells += [row["given_label"], row["suggested_label"], f"{row['score']:.3f}"]
        body.append(cells + ([row["true_label"]] if truth else []))
    classes = ["num", *([""] if several else []), "num", *(["text"] if texts else []), "", "", "num", ""]
    return _table(header, body, classes)


def _tag_noise_section(rates: np.ndarray, tags: Sequence[str]) -> list[str]:
    """The tags most often missing and most often wrong, by cleanlab's estimate of each tag's noise."""
    rates = np.asarray(rates, dtype=np.float64)
    parts = ['<section id="noise-matrix">', "<h2>The estimated noise of each tag</h2>"]
    parts.append(
        f"<p>{len(tags)} tags: the {min(CONFUSIONS, len(tags))} most often missing (P(not given | the row "
        "carries it)) and most often wrong (P(given | it does not)), cleanlab's estimate (every tag's "
        f"is in {SUMMARY_JSON}).</p>"
    )
    for column, what in ((0, "P(not given | carried)"), (1, "P(given | not carried)")):
        largest = np.argsort(-rates[:, column], kind="stable")[:CONFUSIONS]
        body = [[tags[int(k)], f"{rates[int(k), column]:.3f}"] for k in largest]
        parts += _table(["tag", what], body, ["", "num"])
    return [*parts, "</section>"]


def _tag_rows_view(picked: list[tuple[dict[str, Any], int]], dataset: Dataset) -> list[str]:
    """The shown rows of a tag set: a table of their texts (where there are), given tags and the
    ones likely wrong and likely missing."""
    if not picked:
        return []
    texts = getattr(dataset, "texts", {}).get("train")
    several = len({row["file"] for row, _ in picked}) > 1
    header = ["rank", *(["file"] if several else []), "row", *(["text"] if texts else [])]
    header += ["given tags", "likely wrong", "likely missing", "score"]
    body = []
    for row, index in picked:
        cells: list[Any] = [row["rank"], *([row["file"]] if several else []), _number(row)]
        cells += [_cut(texts[index])] if texts else []
        tags = (" ".join(row[key]) for key in ("given_tags", "suspected_wrong", "suspected_missing"))
        body.append([*cells, *tags, f"{row['score']:.3f}"])
    classes = ["num", *([""] if several else []), "num", *(["text"] if texts else []), "", "", "", "num"]
    return _table(header, body, classes)


def _number(row: dict[str, Any]) -> str:
    """The row's number in its file, or its file where each row is a file of its own."""
    return row["file"] if row["row"] is None else str(row["row"])


def _cut(text: str) -> str:
    """``text`` cut to :data:`TEXT_CHARS` characters, an ellipsis where it was cut."""
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS].rstrip() + "…"


def _image_grid(picked: list[tuple[dict[str, Any], int]], images: torch.Tensor) -> list[str]:
    """One captioned thumbnail per row: its place, given -> suggested label and score."""
    several = len({row["file"] for row, _ in picked}) > 1
    parts = ['<div class="grid">']
    for row, index in picked:
        place = f"row {row['row']}" if row["row"] is not None else os.path.basename(row["file"])
        alt = f"{place}: given {row['given_label']}, suggested {row['suggested_label']}"
        lines = [f"#{row['rank']} · {place}"]
        lines += [f"{row['given_label']} → {row['suggested_label']}", f"score {row['score']:.3f}"]
        lines += [f"true: {row['true_label']}"] if "true_label" in row else []
        file = (
            f'<span class="file" title="{escape(row["file"])}">{escape(os.path.basename(row["file"]))}</span>'
            if several and row["row"] is not None
            else ""
        )
        parts += [
            f'<figure data-rank="{row["rank"]}">',
            f'<img src="{png_data_uri(image_png(images[index]))}" alt="{escape(alt)}">',
            f"<figcaption>{file}{'<br>'.join(escape(line) for line in lines)}</figcaption>",
            "</figure>",
        ]
    return [*parts, "</div>"]


def image_png(image: torch.Tensor) -> bytes:
    """One image of a split (C, H, W), float in [0, 1] or uint8, as PNG bytes: grey for one
    channel, else its first three as RGB; shrunk to :data:`THUMBNAIL` pixels at most a side."""
    array = image.detach().cpu().numpy()
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    picture = (
        Image.fromarray(np.ascontiguousarray(array[0]), "L")
        if array.shape[0] < 3
        else Image.fromarray(np.ascontiguousarray(array[:3].transpose(1, 2, 0)), "RGB")
    )
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
