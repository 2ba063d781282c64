"""The documentation site as a reader gets it: ``mkdocs build --strict`` of mkdocs.yml, then the pages.

The docstrings of ``src/`` are Sphinx-style reST; docs_ext/rest_docstrings.py (a Griffe extension that
mkdocs.yml loads) rewrites their cross-reference roles as links or inline code and their literal
blocks (a paragraph ending in ``::``) as code blocks, so the API page must show no raw reST. Every
table of every page must fit the content column in a real headless Chromium at a 1280-px window.

These tests need the docs extra (``pip install -e ".[docs]"``), Debian's ``chromium`` and the fonts the
site is set in (``apt-get install -y --no-install-recommends chromium fonts-liberation``); without
them they FAIL, never skip.
The site is built once for the module (a few seconds).
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers.browser import FONTS_PROBE, PAGE_FONTS, chromium_path, require_fonts, run_chromium
from helpers.repo_paths import ROOT

EXTENSION = ROOT / "docs_ext" / "rest_docstrings.py"
DOCS_HINT = 'pip install -e ".[docs]"'
BUILD_TIMEOUT = 600
BROWSER_TIMEOUT = 120
#: The window the tables must fit at: Material's content column is then about 690 px wide.
WINDOW_WIDTH = 1280
#: How much narrower than the column every table must be able to lay out, so that a font's last
#: pixels (hinting, a minor version) cannot tip a table over: about 3 % of the column.
MARGIN_PX = 20

ROLES = ("func", "class", "meth", "mod", "data", "attr", "exc", "obj", "const")
#: A role as the source writes it, or as Markdown renders it when nothing rewrote it.
RAW_ROLE = re.compile(r":(?:py:)?(?:" + "|".join(ROLES) + r"):(?:`|<code>)")
#: The same in the page's text (tags removed): the role name right before its target.
TEXT_ROLE = re.compile(r":(?:py:)?(?:" + "|".join(ROLES) + r"):[^\s:]")

#: What a new method, backbone, data set or task uses: each has its section on the API page.
EXTENDER_OBJECTS = (
    "labelemb.methods.register",
    "labelemb.methods.base.Rows",
    "labelemb.methods.base.LinearOutputMethod",
    "labelemb.models.register",
    "labelemb.data.register",
    "labelemb.data.DataRequest",
    "labelemb.data.Dataset",
    "labelemb.data.Split",
    "labelemb.tasks.register",
    "labelemb.tasks.Task",
    "labelemb.tasks.Predictor",
)


def require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(
            f"{module} is missing: the documentation tests build the site. Install the docs extra: "
            f"`{DOCS_HINT}`.",
            pytrace=False,
        )


# ------------------------------------------------------------------------------------ the build


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers", "griffe"):
        require(module)
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{(result.stdout + result.stderr)[-4000:]}"
    return out


@pytest.fixture(scope="module")
def api_html(site) -> str:
    return (site / "api" / "index.html").read_text(encoding="utf-8")


class Blocks(HTMLParser):
    """The text of a page's paragraphs and preformatted blocks, in document order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self._open: str | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if (identifier := dict(attrs).get("id")) is not None:
            self.ids.add(identifier)
        if tag in ("p", "pre") and self._open is None:
            self._open, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._open:
            self.blocks.append((tag, "".join(self._text)))
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._text.append(data)

    def text(self, kind: str) -> list[str]:
        return [text for tag, text in self.blocks if tag == kind]


def page_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_api_page_shows_no_rest_role(api_html):
    assert not RAW_ROLE.findall(api_html)
    text = page_text(api_html)
    leftovers = [text[max(0, m.start() - 60) : m.end() + 40] for m in TEXT_ROLE.finditer(text)]
    assert not leftovers, leftovers


def test_api_page_has_no_paragraph_ending_in_a_double_colon(api_html):
    blocks = Blocks(api_html)
    assert not [text for text in blocks.text("p") if text.rstrip().endswith("::")]
    assert not re.search(r"::\s*</p>", api_html)


def test_label_embedding_equation_is_a_code_block(api_html):
    blocks = Blocks(api_html).blocks
    equation = "L = beta H(y, softmax(z1)) + (1 - beta) H(sg(softmax(e)), softmax(z1))"
    where = [index for index, (tag, text) in enumerate(blocks) if equation in text]
    assert where, "LabelEmbedding's loss is not on the API page"
    for index in where:
        tag, text = blocks[index]
        assert tag == "pre", f"the equation is in a <{tag}>, not a code block: {text[:200]}"
        before_tag, before = blocks[index - 1]
        assert before_tag == "p" and before.rstrip().endswith(":") and not before.rstrip().endswith("::")


def test_roles_are_links_where_documented_and_code_elsewhere(api_html):
    links = re.findall(
        r'<a class="autorefs autorefs-internal"[^>]*href="#([^"]+)"><code>([^<]+)</code></a>', api_html
    )
    assert len(links) >= 10, links
    assert (
        "labelemb.Method",
        "Method",
    ) in links  # :class:`Method` and :class:`~labelemb.methods.base.Method`
    # An undocumented target is inline code with its full path as a tooltip, never a broken link.
    plain = re.findall(r'<span title="(labelemb\.[\w.]+)"><code>([^<]+)</code></span>', api_html)
    assert plain, "no role to an undocumented object was rendered as inline code"
    for path, title in plain:
        assert path.endswith(title.split(".")[-1]), (path, title)
    assert "<autoref" not in api_html


def test_api_page_documents_what_an_extender_touches(api_html):
    ids = Blocks(api_html).ids
    missing = [name for name in EXTENDER_OBJECTS if name not in ids]
    assert not missing, f"not on the API page: {missing}"


# ------------------------------------------------------------------------------- the extension


@pytest.fixture(scope="module")
def extension():
    require("griffe")
    spec = importlib.util.spec_from_file_location("rest_docstrings", EXTENSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_literal_blocks_become_fenced_code(extension):
    convert = extension.literal_blocks_to_fences
    assert convert("The loss::\n\n    L = a + b\n      + c\n\nAfter.") == (
        "The loss:\n\n```\nL = a + b\n  + c\n```\n\nAfter."
    )
    assert convert("The loss ::\n\n    L = a") == "The loss\n\n```\nL = a\n```"
    assert convert("Text.\n\n::\n\n    L = a\n\nAfter.") == "Text.\n\n```\nL = a\n```\n\nAfter."
    # Python's cleaning dedents the lines after the first: a first-line "::" owns all the rest.
    assert convert("Example::\n\nx = 1\ny = 2") == "Example:\n\n```\nx = 1\ny = 2\n```"
    # Inside a field, the fence keeps the field's indentation.
    assert convert(":param x: a\n    table::\n\n        a | b\n") == (
        ":param x: a\n    table:\n\n    ```\n    a | b\n    ```\n"
    )
    for unchanged in ("No block after it::", "Text.\nProse::\nnot indented", "```\nx::\n\n    y\n```"):
        assert convert(unchanged) == unchanged


PACKAGE = {
    "__init__.py": '"""The package."""\n\nfrom .base import Rows, helper\n',
    "base.py": '''"""Rows and a helper."""


def helper():
    """A helper for :class:`Rows`."""


class Rows:
    """See :meth:`output`, :meth:`Rows.output`, :func:`helper`, :class:`~pkg.base.Rows`,
    :mod:`pkg.base`, :func:`the helper <pkg.base.helper>`, :func:`!helper`, :class:`Nowhere`
    and ``see :func:`helper` here`` (code, left alone). An equation::

        y = :func:`helper`
    """

    def output(self):
        """The rows (:attr:`~Rows.count`)."""
''',
}


def test_roles_resolve_in_the_docstring_scope(extension):
    import griffe

    with griffe.temporary_pypackage("pkg", PACKAGE) as package:
        loader = griffe.GriffeLoader(
            extensions=griffe.load_extensions(str(EXTENSION)), search_paths=[str(package.tmpdir)]
        )
        module = loader.load("pkg")
        rows = module["base.Rows"].docstring.value
        output = module["base.Rows.output"].docstring.value
        helper = module["base.helper"].docstring.value

    def ref(identifier: str, title: str) -> str:
        return f'<autoref optional identifier="{identifier}">`{title}`</autoref>'

    assert ref("pkg.base.Rows", "Rows") in helper
    for expected in (
        ref("pkg.base.Rows.output", "output"),
        ref("pkg.base.Rows.output", "Rows.output"),
        ref("pkg.base.helper", "helper"),
        ref("pkg.base.Rows", "Rows"),
        ref("pkg.base", "pkg.base"),
        ref("pkg.base.helper", "the helper"),
        ref("Nowhere", "Nowhere"),
        "``see :func:`helper` here``",
    ):
        assert expected in rows, (expected, rows)
    assert ":func:`!helper`" not in rows and ", `helper`, " in rows
    assert "An equation:\n\n```\ny = :func:`helper`\n```" in rows  # roles in a code block stay
    assert ref("pkg.base.Rows.count", "count") in output


# -------------------------------------------------------------------------------- the tables


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path("the table-width tests open the built pages in a real headless browser")


# Appended to a copy of a page: once it has loaded (Material's script has wrapped each table in its
# scrolling box), write every table's widths into the DOM for --dump-dom.
PROBE = """<script>
// The narrowest a table can be laid out: every cell wrapped where it may (figures never break).
function narrowest(table) {
  const width = table.style.width, maxWidth = table.style.maxWidth;
  table.style.width = "min-content";
  table.style.maxWidth = "none";
  const narrow = table.getBoundingClientRect().width;
  table.style.width = width;
  table.style.maxWidth = maxWidth;
  return narrow;
}
__FONTS_PROBE__
window.addEventListener("load", () => {
  const article = document.querySelector("article");
  const style = getComputedStyle(article);
  const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const tables = [];
  let heading = "";
  for (const element of article.querySelectorAll("h1, h2, h3, h4, table")) {
    if (element.tagName !== "TABLE") { heading = element.id; continue; }
    const wrap = element.closest(".md-typeset__scrollwrap");
    tables.push({
      heading,
      header: element.rows[0].innerText.replace(/\\s+/g, " ").slice(0, 80),
      width: element.getBoundingClientRect().width,
      scrollWidth: element.scrollWidth,
      clientWidth: element.clientWidth,
      wrapScrollWidth: wrap ? wrap.scrollWidth : null,
      wrapClientWidth: wrap ? wrap.clientWidth : null,
      minWidth: narrowest(element),
    });
  }
  const out = document.createElement("pre");
  out.id = "table-widths";
  const cell = article.querySelector("td") || article;
  const code = document.querySelector("code") || cell;
  const fonts = {
    text: getComputedStyle(cell).fontFamily,
    code: getComputedStyle(code).fontFamily,
    installed: installedFonts(),
  };
  out.textContent = JSON.stringify({viewport: window.innerWidth, column, tables, fonts});
  document.body.appendChild(out);
});
</script>"""


def measure_tables(chromium: str, page: Path, tmp_path: Path) -> dict:
    """The widths of ``page``'s tables in headless Chromium at WINDOW_WIDTH px, offline."""
    probe = page.with_name("table-widths-probe.html")
    script = PROBE.replace("__FONTS_PROBE__", FONTS_PROBE)
    text = page.read_text(encoding="utf-8").replace("</body>", script + "</body>")
    probe.write_text(text, encoding="utf-8")
    result = run_chromium(
        chromium,
        tmp_path,
        probe,
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--window-size={WINDOW_WIDTH},1000",
        "--dump-dom",
        timeout=BROWSER_TIMEOUT,
    )
    probe.unlink()
    found = re.search(r'<pre id="table-widths">(.*?)</pre>', result.stdout.decode("utf-8"), re.S)
    assert found, f"the probe wrote nothing on {page}: {result.stderr.decode(errors='replace')[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def widths(site, chromium, tmp_path_factory) -> dict[str, dict]:
    """Every page's table widths, by the page's path in the site."""
    pages = sorted(site.rglob("index.html"))
    tmp = tmp_path_factory.mktemp("chromium")
    return {page.relative_to(site).as_posix(): measure_tables(chromium, page, tmp) for page in pages}


def too_wide(page: str, measured: dict) -> list[tuple[str, str]]:
    """(id of the heading above, what is wrong) of every table of ``page`` wider than the column,
    or that cannot lay out at least MARGIN_PX narrower than it."""
    assert measured["viewport"] == WINDOW_WIDTH, measured["viewport"]
    column = measured["column"]
    problems = []
    for number, table in enumerate(measured["tables"]):
        if (
            table["width"] > column + 0.5
            or table["minWidth"] > column - MARGIN_PX
            or table["scrollWidth"] > table["clientWidth"]
            or (table["wrapScrollWidth"] or 0) > (table["wrapClientWidth"] or 0)
        ):
            problems.append(
                (
                    table["heading"],
                    f"{page} table {number} under #{table['heading']}: {table['width']:.0f} px, at "
                    f"narrowest {table['minWidth']:.0f} px (scrolls {table['scrollWidth']} in "
                    f"{table['clientWidth']}; its box {table['wrapScrollWidth']} in "
                    f"{table['wrapClientWidth']}) in a {column:.0f}-px column less a {MARGIN_PX}-px "
                    f"margin: {table['header']}",
                )
            )
    return problems


def test_the_site_is_measured_in_its_own_fonts(widths):
    """docs/stylesheets/extra.css sets the site in PAGE_FONTS, and the browser measuring it has them."""
    for page, measured in widths.items():
        require_fonts(measured["fonts"]["installed"], "the docs site")
        assert measured["fonts"]["text"].startswith(f'"{PAGE_FONTS[0]}"'), (page, measured["fonts"])
        assert measured["fonts"]["code"].startswith(f'"{PAGE_FONTS[1]}"'), (page, measured["fonts"])


def test_results_tables_fit_the_content_column(widths):
    """The results, split by question: docs/results/index.md opens with the summary, the pages of
    docs/results/ hold the tables."""
    pages = sorted(page for page in widths if page.startswith("results/"))
    assert "results/index.html" in pages and len(pages) >= 8, pages
    assert sum(len(widths[page]["tables"]) for page in pages) >= 25
    measured = widths["results/index.html"]
    assert 600 < measured["column"] < 800, measured["column"]  # Material's column at 1280 px
    assert any(table["header"].startswith("Experiment (metric)") for table in measured["tables"])
    assert not [message for page in pages for _, message in too_wide(page, widths[page])]


def test_every_pages_tables_fit_the_content_column(widths):
    problems = [message for page, measured in widths.items() for _, message in too_wide(page, measured)]
    assert not problems, "\n".join(problems)


def test_results_summary_links_every_row_to_a_section(site):
    """Each row of the summary links to a section of the results page that holds it."""
    index = site / "results" / "index.html"
    page = index.read_text(encoding="utf-8")
    start = page.rindex("<table>", 0, page.index("Experiment (metric)"))
    summary = page[start : page.index("</table>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", summary, re.S)[1:]
    assert len(rows) >= 15
    for row in rows:
        target = re.search(r'<a href="([^"#]*)#([^"]+)">', row)
        assert target, row[:200]
        linked = index.parent / target.group(1) / "index.html" if target.group(1) else index
        assert linked.is_file(), (target.group(1), row[:200])
        assert target.group(2) in Blocks(linked.read_text(encoding="utf-8")).ids, row[:200]
