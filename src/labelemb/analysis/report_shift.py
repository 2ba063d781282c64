"""The "Under shift" section of `labelemb report`'s page: the comparison's table of the runs'
``shift.json`` (:func:`~labelemb.analysis.shift_table.shift_block`) and the error against the
severity of the corruption (:func:`~labelemb.analysis.curves.plot_error_severity`)."""

from __future__ import annotations

from dataclasses import dataclass

from .beyond_error import TableBlock
from .report_html import escape, img, table_block_html

SHIFT_SECTION = "under-shift"


@dataclass
class UnderShift:
    """What the section shows: the table with its lines, the severity figure (None where no
    corruption is shared at two severities or more), the runs without a ``shift.json``
    (``"onehot seed 1"``) and the command that adds it."""

    block: TableBlock
    severity_png: bytes | None
    left_out: list[str]
    command: str


def shift_section(shift: UnderShift) -> list[str]:
    """The section's HTML, every text escaped."""
    parts = [
        f'<section id="{SHIFT_SECTION}">',
        "<h2>Under shift</h2>",
        "<p>Each run's selected weights on corrupted copies of its test split, once it finished (its "
        "shift.json): does the method that wins on clean inputs still win when they drift?</p>",
        *table_block_html(shift.block),
    ]
    if shift.severity_png is not None:
        parts += [
            "<p>Test error against the severity of the corruption, 0 being the clean test split: at "
            "each severity the mean over the corruptions recorded at two severities or more (those a "
            "scale of strength runs through; a corruption at one severity only, as MNIST-C's, is in "
            "the table alone); each seed thin, the mean over seeds bold.</p>",
            img(shift.severity_png, "test error against the severity of the corruption for every method"),
        ]
    if shift.left_out:
        parts.append(
            f'<p class="note">Without a shift.json: {escape(", ".join(shift.left_out))}. '
            f"<code>{escape(shift.command)}</code> adds it from the saved weights.</p>"
        )
    return [*parts, "</section>"]
