"""The pieces of `labelemb report`'s HTML that every section uses: escaped text, a Markdown table
as an HTML table, and a PNG embedded as a ``data:`` URI (:mod:`labelemb.analysis.report_page`
puts the page together)."""

from __future__ import annotations

import base64
import html
from typing import Any


def escape(text: Any) -> str:
    """``text`` safe inside HTML, quotes included."""
    return html.escape(str(text), quote=True)


def markdown_table_html(markdown: str, *, wide: bool = False) -> str:
    """A GitHub-style Markdown table (header, rule, rows) as an HTML table, every cell escaped.

    Columns whose rule is ``---:`` are right-aligned (``class="num"``), as in the Markdown. Where
    a column is narrow, a name breaks after an underscore (``label_<wbr>embedding``) and a
    "mean ± std" before its sign. ``wide``: a table of many columns (the comparison's sixteen), set
    smaller and tighter so that it fits a 1280-px window.
    """
    lines = [line.strip() for line in markdown.strip().splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        raise ValueError(f"not a Markdown table: {markdown[:80]!r}")

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    header, rule, body = cells(lines[0]), cells(lines[1]), [cells(line) for line in lines[2:]]
    numeric = [r.endswith(":") and not r.startswith(":") for r in rule]

    def cell(value: str) -> str:
        # A long method name is one unbreakable word otherwise, the widest of its column.
        text = escape(value).replace("_", "_<wbr>")
        mean, sign, std = text.partition(" ± ")
        # A narrow column breaks "mean ± std" before the sign, never between it and the std.
        return f'{mean} <span class="std">± {std}</span>' if sign else text

    def row(values: list[str], tag: str) -> str:
        out = []
        for i, value in enumerate(values):
            attr = ' class="num"' if i < len(numeric) and numeric[i] else ""
            out.append(f"<{tag}{attr}>{cell(value)}</{tag}>")
        return "<tr>" + "".join(out) + "</tr>"

    return (
        ('<table class="wide">' if wide else "<table>")
        + "\n<thead>"
        + row(header, "th")
        + "</thead>\n<tbody>\n"
        + "\n".join(row(values, "td") for values in body)
        + "\n</tbody>\n</table>"
    )


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for the bytes of a PNG file."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img(data: bytes, alt: str) -> str:
    """An ``<img>`` of the PNG ``data``, embedded, with its ``alt`` text escaped."""
    return f'<img src="{png_data_uri(data)}" alt="{escape(alt)}">'
