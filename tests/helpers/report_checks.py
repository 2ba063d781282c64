"""What the report tests share (tests/analysis/test_report*.py): the small comparison they report
on, the page read back as sections, tables and pictures, and the browser probes that measure it."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from helpers.browser import FONTS_PROBE, PAGE_FONTS, require_fonts, run_chromium
from labelemb.analysis.report_html import markdown_table_html
from labelemb.analysis.report_page import BEYOND_ERROR_SECTION
from labelemb.analysis.report_shift import SHIFT_SECTION

METHODS = ("onehot", "label_embedding")
SMALL = {
    "experiment": "rep",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2},
    # The digits' out-of-distribution set: the photo patches (the report's OOD table).
    "ood": [{"data": "patches"}],
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_PNG = "data:image/png;base64,"


class Page(HTMLParser):
    """Ids, images, links and tables of an HTML page, each tagged with the section it lies in."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.sections: list[str] = []
        self.images: list[tuple[str | None, dict[str, str]]] = []  # (section, attributes)
        self.urls: list[str] = []  # every src and href
        self.tables: list[tuple[str | None, list[list[str]]]] = []
        self.text: dict[str | None, str] = {}
        self.style = ""
        self._stack: list[str | None] = []  # the section id of each open <section>
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._in_style = False
        self.feed(text)
        self.close()

    @property
    def section(self) -> str | None:
        return self._stack[-1] if self._stack else None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for key in ("src", "href"):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag == "section":
            self._stack.append(attrs.get("id"))
            self.sections.append(attrs.get("id"))
        elif tag == "img":
            self.images.append((self.section, attrs))
        elif tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag):
        if tag == "section" and self._stack:
            self._stack.pop()
        elif tag == "table" and self._rows is not None:
            self.tables.append((self.section, self._rows))
            self._rows = None
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data
        if self._cell is not None:
            self._cell.append(data)
        self.text[self.section] = self.text.get(self.section, "") + data

    def tables_in(self, section: str) -> list[list[list[str]]]:
        return [rows for s, rows in self.tables if s == section]


def png_bytes(uri: str) -> bytes:
    assert uri.startswith(DATA_PNG), uri[:60]
    data = base64.b64decode(uri[len(DATA_PNG) :], validate=True)
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # checks the chunks and their CRCs
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel
        assert image.width > 100 and image.height > 100
    return data


# Appended to a copy of the page (the report itself has no script): once every picture has
# loaded, record the size the browser decoded it to.
PROBE = (
    '<script>window.addEventListener("load", () => { for (const img of document.images) '
    'img.setAttribute("data-decoded", img.complete ? img.naturalWidth + "x" + img.naturalHeight : "no"); '
    "});</script>"
)


#: The window the comparison table must fit (issue 44: its ECE and NLL columns needed scrolling).
WINDOW_WIDTH = 1280
#: How much narrower than the column each table must be able to lay out.
MARGIN_PX = 20

# Appended to a copy of the page: once it has laid out, where the section's table ends against
# the page's column and the window, and whether anything scrolls sideways.
WIDTH_PROBE = """<script>
__FONTS_PROBE__
window.addEventListener("load", () => {
  const table = document.querySelector("#SECTION table");
  const body = document.body;
  const right = table.getBoundingClientRect().right;
  // The narrowest the table can be laid out (every cell wrapped where it may): its right edge then.
  table.style.width = "min-content";
  const narrowest = table.getBoundingClientRect().right;
  table.style.width = "";
  const measured = JSON.stringify({
    viewport: window.innerWidth,
    page: document.documentElement.scrollWidth,
    column: body.getBoundingClientRect().right - parseFloat(getComputedStyle(body).paddingRight),
    table: right,
    narrowest,
    scrollWidth: table.scrollWidth,
    clientWidth: table.clientWidth,
    fonts: installedFonts(),
    font: getComputedStyle(table).fontFamily,
  });
  const out = document.createElement("pre");
  out.id = "widths";
  out.textContent = measured;
  body.appendChild(out);
});
</script>"""


def comparison_widths(chromium: str, html_text: str, tmp_path: Path, section: str = "comparison") -> dict:
    probe = tmp_path / "widths.html"
    script = WIDTH_PROBE.replace("SECTION", section).replace("__FONTS_PROBE__", FONTS_PROBE)
    probe.write_text(html_text.replace("</body>", script + "</body>"), encoding="utf-8")
    dom = run_chromium(chromium, tmp_path, probe, f"--window-size={WINDOW_WIDTH},1000", "--dump-dom")
    found = re.search(r'<pre id="widths">(.*?)</pre>', dom.stdout.decode("utf-8"), re.S)
    assert found, dom.stderr.decode(errors="replace")[-2000:]
    return json.loads(found.group(1))


#: Where each section's table is in comparison.md: after the first text, before the second ("all":
#: every beyond-error table).
SECTION_MARKDOWN = {
    "comparison": ("", "Calibration of the test predictions"),
    "calibration": ("Calibration of the test predictions", "Knowing when it is wrong"),
    BEYOND_ERROR_SECTION: ("Knowing when it is wrong", "Out-of-distribution inputs"),
    "all": ("Knowing when it is wrong", "Under shift: "),
    SHIFT_SECTION: ("Under shift: ", "\0"),
}


def section_markdown(markdown: str, section: str) -> str:
    """The part of comparison.md that holds the (first) table of the report's ``section``."""
    after, before = SECTION_MARKDOWN[section]
    return (markdown.partition(after)[2] if after else markdown).partition(before)[0]


def with_the_longest_method_names(page: str, experiment: Path, section: str = "comparison") -> str:
    """``page`` with the (first) table of ``section`` (comparison, calibration, the beyond-error
    or the under-shift one) renamed to the longest method names."""
    markdown = section_markdown((experiment / "comparison.md").read_text(encoding="utf-8"), section)
    longest = markdown.replace("| onehot |", "| confidence_penalty |").replace(
        "| label_embedding |", "| label_embedding_fixed |"
    )
    start = page.index("<table", page.index(f'<section id="{section}">'))
    end = page.index("</table>", start) + len("</table>")
    return page[:start] + markdown_table_html(longest, wide=True) + page[end:]


def assert_fits(widths: dict, name: str) -> None:
    require_fonts(widths["fonts"], "labelemb report's page")
    assert widths["font"].startswith(f'"{PAGE_FONTS[0]}"'), widths["font"]
    assert widths["viewport"] == WINDOW_WIDTH, widths
    assert widths["table"] <= widths["column"] + 0.5, f"{name}: wider than the column: {widths}"
    # With room to spare, so that a font's last pixels (hinting, a minor version) cannot tip it over.
    assert widths["narrowest"] <= widths["column"] - MARGIN_PX, f"{name}: no margin left: {widths}"
    assert widths["scrollWidth"] <= widths["clientWidth"], f"{name}: {widths}"
    assert widths["page"] <= WINDOW_WIDTH, f"{name}: the page scrolls sideways: {widths}"


def markdown_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each Markdown table of ``text`` (a run of lines that start with ``|``), its rule left out."""
    tables: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append([c.strip() for c in line.strip("|").split("|")])
        previous = line
    return tables


def rows_by_name(table: list[list[str]]) -> dict[str, dict[str, str]]:
    """A table of :func:`markdown_tables` as its first column's names -> column -> cell."""
    header, *rows = table
    return {row[0]: dict(zip(header, row)) for row in rows}


def drawn_reliability_figure(monkeypatch, runs: dict, path: Path):
    """The matplotlib figure plot_reliability lays out for ``runs`` and writes to ``path``."""
    from labelemb.analysis import reliability

    figures = []
    real = reliability.save_figure

    def keep(fig, target):
        figures.append(fig)
        return real(fig, target)

    monkeypatch.setattr(reliability, "save_figure", keep)
    assert reliability.plot_reliability(runs, path) is not None
    (fig,) = figures
    return fig
