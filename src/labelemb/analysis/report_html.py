"""The pieces of `labelemb report`'s HTML that every section uses: escaped text, a Markdown table
as an HTML table, a PNG embedded as a ``data:`` URI, and the page's head and style
(:mod:`labelemb.analysis.report_page` puts the page together)."""

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


def table_block_html(block: Any) -> list[str]:
    """A table with its lines (a :class:`~labelemb.analysis.beyond_error.TableBlock`): the line
    above it, the table, and each note under it."""
    return [
        f"<p>{escape(block.intro)}</p>",
        markdown_table_html(block.markdown, wide=True),
        *(f'<p class="note">{escape(note)}</p>' for note in block.notes),
    ]


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for the bytes of a PNG file."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img(data: bytes, alt: str) -> str:
    """An ``<img>`` of the PNG ``data``, embedded, with its ``alt`` text escaped."""
    return f'<img src="{png_data_uri(data)}" alt="{escape(alt)}">'


#: The page's style sheet, inlined in its head: the report is one file.
CSS = """
body {
  font-family: "Liberation Sans", Arial, Helvetica, sans-serif;
  margin: 2em auto; max-width: 1150px; padding: 0 1em; color: #222;
}
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
p.made { color: #666; font-size: 0.9em; margin-top: 0; }
code { font-family: "Liberation Mono", "Courier New", monospace; background: #f3f3f3; padding: 0 0.25em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
table.wide { font-size: 0.8em; }
table.wide th, table.wide td { padding: 0.2em 0.3em; }
span.std { white-space: nowrap; }
th { background: #f0f0f0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.method { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.method figure { margin: 0; max-width: 560px; }
.note { color: #666; }
"""


def page_head(title: str, made: str, setup: str, nav: str) -> list[str]:
    """The page's lines up to its first section: the document's head and the header (``made`` and
    ``nav`` are HTML already)."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="made">{made}</p>',
        f"<p>{escape(setup)}</p>",
        f"<nav>{nav}</nav>",
        "</header>",
    ]
