"""The "Noisy labels" section of `labelemb report`'s page, for runs trained on noisy labels: the
comparison's tables of the wrong training labels and of the disputed test labels
(:mod:`~labelemb.analysis.noise_table`) and the memorisation curves
(:func:`~labelemb.analysis.curves.plot_memorisation`); and links to the pages of the lists of likely
wrong labels that `labelemb label-issues` left in the experiment's folder (:func:`label_issues_links`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .beyond_error import TableBlock
from .report_html import escape, img, table_block_html

NOISY_SECTION = "noisy-labels"
#: Where `labelemb label-issues` leaves its lists in an experiment's folder, and each list's page.
LABEL_ISSUES_DIR, LABEL_ISSUES_PAGE = "label-issues", "label-issues.html"


@dataclass
class NoisyLabels:
    """What the section shows: its tables with their lines, the memorisation figure (None where the
    runs' checks do not record memorisation) and the links to label-issues pages (href, text)."""

    blocks: list[TableBlock]
    memorisation_png: bytes | None
    label_issues: list[tuple[str, str]] = field(default_factory=list)


def label_issues_links(experiment_dir: Path, page_dir: Path) -> list[tuple[str, str]]:
    """A link to each label-issues page under ``experiment_dir`` (href relative to ``page_dir``, where
    the report is written), named by its list's folder with its counts where its summary reads."""
    links = []
    for page in sorted((Path(experiment_dir) / LABEL_ISSUES_DIR).glob(f"*/{LABEL_ISSUES_PAGE}")):
        text = page.parent.name
        try:
            summary = json.loads((page.parent / "label_issues.json").read_text(encoding="utf-8"))
            text += (
                f": {summary['rows']:,} training rows, {summary['flagged']:,} flagged, about "
                f"{summary['estimated_wrong']:,} wrong"
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # the page alone still says it all
        links.append((quote(Path(os.path.relpath(page, page_dir)).as_posix()), text))
    return links


def noisy_labels_section(noisy: NoisyLabels) -> list[str]:
    """The section's HTML, every text escaped."""
    parts = [f'<section id="{NOISY_SECTION}">', "<h2>Noisy labels</h2>"]
    if noisy.blocks:
        parts.append(
            "<p>The runs trained on labels that are wrong in places and were judged on right ones: how "
            "many of the wrong training labels each method fitted, how well its loss finds them, and "
            "where it ranks the test rows whose labels people disputed.</p>"
        )
    for block in noisy.blocks:
        parts += table_block_html(block)
    if noisy.memorisation_png is not None:
        parts += [
            "<p>Memorisation while training: at each check, the share of the wrongly labelled training "
            "examples that the last step to see them predicted as their wrong label (left) and as "
            "their true class (right); each seed thin, the mean over seeds bold.</p>",
            img(noisy.memorisation_png, "memorisation curves of each method"),
        ]
    if noisy.label_issues:
        parts += [
            "<p>The training rows whose labels look wrong, as <code>labelemb label-issues</code> "
            "listed them: each list's page shows its flagged rows beside their given and suggested "
            "labels.</p>",
            "<ul>",
            *(f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for href, text in noisy.label_issues),
            "</ul>",
        ]
    return [*parts, "</section>"]
