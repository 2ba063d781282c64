"""The "Noisy labels" section of `labelemb report`'s page, for runs trained on noisy labels: the
comparison's tables of the wrong training labels and of the disputed test labels
(:mod:`~labelemb.analysis.noise_table`) and the memorisation curves
(:func:`~labelemb.analysis.curves.plot_memorisation`)."""

from __future__ import annotations

from dataclasses import dataclass

from .beyond_error import TableBlock
from .report_html import img, table_block_html

NOISY_SECTION = "noisy-labels"


@dataclass
class NoisyLabels:
    """What the section shows: its tables with their lines, and the memorisation figure (None
    where the runs' checks do not record memorisation)."""

    blocks: list[TableBlock]
    memorisation_png: bytes | None


def noisy_labels_section(noisy: NoisyLabels) -> list[str]:
    """The section's HTML, every text escaped."""
    parts = [
        f'<section id="{NOISY_SECTION}">',
        "<h2>Noisy labels</h2>",
        "<p>The runs trained on labels that are wrong in places and were judged on right ones: how "
        "many of the wrong training labels each method fitted, how well its loss finds them, and "
        "where it ranks the test rows whose labels people disputed.</p>",
    ]
    for block in noisy.blocks:
        parts += table_block_html(block)
    if noisy.memorisation_png is not None:
        parts += [
            "<p>Memorisation while training: at each check, the share of the wrongly labelled training "
            "examples that the last step to see them predicted as their wrong label (left) and as "
            "their true class (right); each seed thin, the mean over seeds bold.</p>",
            img(noisy.memorisation_png, "memorisation curves of each method"),
        ]
    return [*parts, "</section>"]
