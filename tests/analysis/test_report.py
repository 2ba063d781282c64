"""labelemb report: one self-contained HTML page, checked as a file and in a real headless Chromium.

The comparison directory is made by actually training onehot and label_embedding over two seeds
on the bundled digits (a 64-16-10 MLP, two epochs). The browser tests need Debian's ``chromium``
and the fonts the page is set in (``apt-get install -y --no-install-recommends chromium
fonts-liberation``); without them they FAIL (never skip).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import statistics
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from browser import FONTS_PROBE, PAGE_FONTS, chromium_path, require_fonts, run_chromium
from PIL import Image
from repo_paths import CONFIGS, DOCS

from labelemb.analysis.report import build_report
from labelemb.analysis.report_page import markdown_table_html, png_data_uri, render_report
from labelemb.analysis.representation import run_representation
from labelemb.cli import main

METHODS = ("onehot", "label_embedding")
SMALL = {
    "experiment": "rep",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2},
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


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, one_thread):
    """A real comparison directory: 2 methods x 2 seeds on digits, made by `labelemb compare`."""
    root = tmp_path_factory.mktemp("report")
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    args = ["--methods", ",".join(METHODS), "--seeds", "0-1", "--output-dir", str(root), "--no-progress"]
    assert main(["compare", "--config", str(config), *args]) == 0
    return root / SMALL["experiment"]


@pytest.fixture(scope="module")
def report(experiment, one_thread) -> Path:
    return build_report(experiment, top=3)


@pytest.fixture(scope="module")
def page(report) -> Page:
    return Page(report.read_text(encoding="utf-8"))


def test_report_is_written_beside_the_runs_with_the_analysis_under_analysis(experiment, report):
    assert report == experiment / "report.html"
    analysis = experiment / "analysis"
    for method in METHODS:  # the lowest seed of each method only
        assert (analysis / f"{method}-seed0" / "heatmap.png").read_bytes().startswith(PNG_MAGIC)
        assert not (analysis / f"{method}-seed1").exists()
    assert (analysis / "curves.png").read_bytes().startswith(PNG_MAGIC)
    assert (analysis / "reliability.png").read_bytes().startswith(PNG_MAGIC)
    assert {r["method"] for r in json.loads((analysis / "analysis.json").read_text())["runs"]} == set(METHODS)


def test_page_is_self_contained(report, page):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert page.urls, "no src or href at all"
    for url in page.urls:  # only embedded pictures and links within the page
        assert url.startswith(DATA_PNG) or url.startswith("#"), url[:80]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "<link" not in text and "<script" not in text and "@import" not in text and "url(" not in text
    assert "@font-face" not in page.style and page.style.strip()


def test_images_are_valid_base64_pngs_of_the_figures(experiment, page):
    by_section = {section: png_bytes(attrs["src"]) for section, attrs in page.images}
    assert set(by_section) == {"curves", "calibration", *(f"method-{m}" for m in METHODS)}
    analysis = experiment / "analysis"
    assert by_section["curves"] == (analysis / "curves.png").read_bytes()
    assert by_section["calibration"] == (analysis / "reliability.png").read_bytes()
    for method in METHODS:
        assert by_section[f"method-{method}"] == (analysis / f"{method}-seed0" / "heatmap.png").read_bytes()
    assert all(attrs.get("alt") for _, attrs in page.images)


#: The report's sections, in order, for the onehot and label_embedding runs of the fixture.
SECTIONS = ["comparison", "curves", "calibration", "method-onehot", "method-label_embedding", "wordnet"]


def test_sections_have_stable_ids_in_order(page):
    assert page.sections == SECTIONS
    assert len(page.ids) == len(set(page.ids))
    links = [url for url in page.urls if url.startswith("#")]
    assert links == [f"#{s}" for s in page.sections]  # the navigation reaches every section


def test_comparison_table_has_both_methods_with_the_numbers_of_compare(experiment, page):
    (table,) = page.tables_in("comparison")
    header, *rows = table
    assert header[0] == "method" and "AUAC" in header
    assert [row[0] for row in rows] == list(METHODS)  # the baseline first
    # The same cells as the comparison.md that `labelemb compare` wrote from the same runs.
    markdown = (experiment / "comparison.md").read_text().splitlines()
    for row in rows:
        line = next(line for line in markdown if line.startswith(f"| {row[0]} |"))
        assert [cell.strip() for cell in line.strip("|").split("|")] == row
    assert all(row[1] == "2" for row in rows)
    # What p is where the seeds do not vary (compare's welch_p), as under compare's table.
    assert "1 where neither method's seeds vary" in page.text["comparison"]


def test_calibration_is_in_the_table_and_drawn_per_method_with_seeds_pooled(page):
    (table,) = page.tables_in("comparison")
    assert table[0][-4:] == ["ECE % (selected)", "p ECE vs onehot", "NLL (selected)", "p NLL vs onehot"]
    assert "expected calibration error" in page.text["comparison"]
    text = page.text["calibration"]
    assert "Reliability diagrams" in text and "every seed of a method pooled" in text


def calibration_markdown_rows(experiment: Path) -> list[list[str]]:
    """The rows of the calibration table in the comparison.md `labelemb compare` wrote (its second table)."""
    markdown = (experiment / "comparison.md").read_text()
    table = markdown.split("Calibration of the test predictions at the check each run selects", 1)[1]
    table = table.split("Knowing when it is wrong", 1)[0]  # the tables after it are not calibration's
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    ]


def test_calibration_section_has_the_table_raw_and_scaled_and_says_what_scaling_did(experiment, page):
    """The digits runs have a dev split: each fit a temperature, so the table, the ranking line and
    the diagrams are raw and scaled."""
    (table,) = page.tables_in("calibration")
    assert table == calibration_markdown_rows(experiment)  # the cells of compare's own table
    assert table[0][:4] == ["method", "T", "ECE %", "ECE % scaled"] and table[0][-1] == "Brier scaled"
    assert [row[0] for row in table[1:]] == list(METHODS)
    assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", cell) for row in table[1:] for cell in row[1:4])
    text = page.text["calibration"]
    assert "scaled by the temperature T each run fit on its dev split" in text
    assert "Scaling keeps the ECE order of the methods" in text or "scaling reorders the methods" in text
    assert "Each method's diagram raw, then scaled beside it" in text
    ((_, image),) = [(s, attrs) for s, attrs in page.images if s == "calibration"]
    assert image["alt"].endswith("raw and scaled")


def test_a_calibration_section_without_a_dev_split_is_raw_only_and_says_why():
    from labelemb.analysis.calibration_table import CalibrationTable

    table = CalibrationTable(
        "| method | ECE % | NLL |\n| --- | ---: | ---: |\n| onehot | 3.00 ± 0.10 | 0.300 ± 0.010 |",
        "ECE: expected calibration error ...",
        "Nothing was scaled: the data has no dev split, and a temperature is fit only on dev, never on the "
        "test split.",
        scaled=False,
    )
    png = (DOCS / "fashion-mnist-mlp-reliability.png").read_bytes()
    html_text = render_report(
        title="t",
        made="made",
        setup="s",
        comparison_markdown="| method | n |\n| --- | ---: |\n| onehot | 2 |",
        curves_png=png,
        methods=[{"method": "onehot", "missing": "not analysed"}],
        wordnet_by_method={},
        wordnet_absent="none",
        reliability_png=png,
        calibration=table,
    )
    page = Page(html_text)
    assert page.sections == ["comparison", "curves", "calibration", "method-onehot", "wordnet"]
    assert page.tables_in("calibration") == [
        [["method", "ECE %", "NLL"], ["onehot", "3.00 ± 0.10", "0.300 ± 0.010"]]
    ]
    text = page.text["calibration"]
    assert "Nothing was scaled: the data has no dev split" in text
    assert "scaled by the temperature" not in text and "then scaled beside it" not in text


def test_each_method_has_its_seed_source_and_top_k_table(experiment, page):
    for method in METHODS:
        section = f"method-{method}"
        (table,) = page.tables_in(section)
        header, *rows = table
        assert header == ["label", "#1", "#2", "#3"]  # top=3
        assert [row[0] for row in rows] == ["zero", "one", "two", "three", "four"] + [
            "five",
            "six",
            "seven",
            "eight",
            "nine",
        ]
        analysis = json.loads((experiment / "analysis" / f"{method}-seed0" / "analysis.json").read_text())
        for row in rows:
            expected = [f"{n} ({v:.3f})" for n, v in analysis["most_similar"][row[0]]]
            assert row[1:] == expected
        assert "Seed 0" in page.text[section]
    assert "mean softmax on dev" in page.text["method-onehot"]
    assert "learned" in page.text["method-label_embedding"]


def test_wordnet_section_says_why_it_is_absent_for_digits(page):
    assert not page.tables_in("wordnet")
    assert "no WordNet mapping for the classes of dataset 'digits'" in page.text["wordnet"]


def test_how_it_was_made(report, page):
    from labelemb import __version__

    header = page.text[None]
    assert f"labelemb report {report.parent}" in header and "--top 3" in header
    assert f"labelemb {__version__}" in header
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", header)
    assert "Dataset digits, model mlp, 2 epochs; 2 methods, 4 runs (seeds 0, 1)" in header


def test_wordnet_correlation_over_every_seed(experiment, tmp_path, monkeypatch, one_thread):
    """With a (made-up) WordNet mapping for the digits, every seed of each method is correlated."""
    from labelemb.analysis import wordnet_synsets
    from labelemb.analysis.wordnet import semantic_correlation
    from labelemb.analysis.wordnet_synsets import SYNSETS

    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    monkeypatch.setitem(SYNSETS, "digits", dict(zip(names, SYNSETS["cifar10"].values())))
    monkeypatch.setitem(wordnet_synsets.UNMAPPED, "digits", {})
    monkeypatch.setitem(wordnet_synsets._DATASET_ALIASES, "digits", "digits")
    copy = tmp_path / "rep"
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("analysis", "report.html"))
    path = build_report(copy, tmp_path / "out" / "page.html")
    assert path == tmp_path / "out" / "page.html" and not (copy / "report.html").exists()
    page = Page(path.read_text(encoding="utf-8"))
    (table,) = page.tables_in("wordnet")
    assert table[0] == ["method", "seeds", "tau-b (mean ± std)"]
    for method, seeds, value in table[1:]:
        taus = [
            semantic_correlation(rep.matrix, rep.class_names, "digits")["mean_tau"]
            for rep in (run_representation(copy / method / f"seed{s}") for s in (0, 1))
        ]
        assert seeds == "2"
        assert value == f"{statistics.fmean(taus):.3f} ± {statistics.stdev(taus):.3f}"
    assert [row[0] for row in table[1:]] == list(METHODS)
    saved = json.loads((copy / "analysis" / "wordnet-all-seeds.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in saved["runs"]) == sorted(
        (m, s) for m in METHODS for s in (0, 1)
    )


def test_rendering_escapes_every_text():
    evil = "<b>&x</b>"
    markdown = f"| method | n |\n| --- | ---: |\n| {evil} | 2 |"
    table = markdown_table_html(markdown)
    assert "<b>" not in table and "&lt;b&gt;&amp;x&lt;/b&gt;" in table
    assert '<td class="num">2</td>' in table
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    )
    page = render_report(
        title=evil,
        made="made",
        setup=evil,
        comparison_markdown=markdown,
        curves_png=png,
        methods=[
            {
                "method": evil,
                "seed": 0,
                "source": evil,
                "heatmap_png": png,
                "most_similar": {evil: [[evil, 0.5]], "b": [["a", 0.25]]},
            },
            {"method": "gone", "missing": evil},
        ],
        wordnet_by_method={evil: {"runs": 1, "mean": 0.1, "std": 0.0}},
        wordnet_absent="",
    )
    assert "<b>" not in page
    parsed = Page(page)
    assert parsed.sections == ["comparison", "curves", f"method-{evil}", "method-gone", "wordnet"]
    assert parsed.tables_in("wordnet")[0][1] == [evil, "1", "0.100 ± 0.000"]
    assert parsed.tables_in("wordnet")[0][2] == ["gone", "0", "-"]
    with pytest.raises(ValueError, match="not a PNG"):
        png_data_uri(b"GIF89a")


def test_report_command(experiment, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(experiment), "--output", str(out), "--top", "2", "--no-analysis"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = Page(out.read_text(encoding="utf-8"))
    assert page.tables_in("method-onehot")[0][0] == ["label", "#1", "#2"]  # cut from the saved top 3
    # Without any analysis saved, each method says so instead of failing.
    bare = tmp_path / "bare"
    shutil.copytree(experiment, bare, ignore=shutil.ignore_patterns("analysis", "report.html"))
    assert main(["report", str(bare), "--no-analysis"]) == 0
    page = Page((bare / "report.html").read_text(encoding="utf-8"))
    assert "has not been analysed" in page.text["method-onehot"] and not page.tables_in("method-onehot")
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no finished runs" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the browser


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_path("the report tests open the page in a real headless browser")


# Appended to a copy of the page (the report itself has no script): once every picture has
# loaded, record the size the browser decoded it to.
PROBE = (
    '<script>window.addEventListener("load", () => { for (const img of document.images) '
    'img.setAttribute("data-decoded", img.complete ? img.naturalWidth + "x" + img.naturalHeight : "no"); '
    "});</script>"
)


def test_chromium_renders_every_section_and_decodes_every_picture(chromium, report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    dom = run_chromium(chromium, tmp_path, probe, "--dump-dom").stdout.decode("utf-8")
    page = Page(dom)
    assert page.sections == SECTIONS
    assert [row[0] for row in page.tables_in("comparison")[0][1:]] == list(METHODS)
    for method in METHODS:
        assert len(page.tables_in(f"method-{method}")[0]) == 11  # header + 10 digits
    decoded = {section: attrs.get("data-decoded") for section, attrs in page.images}
    assert set(decoded) == {"curves", "calibration", "method-onehot", "method-label_embedding"}
    for section, size in decoded.items():
        assert size and re.fullmatch(r"[1-9]\d*x[1-9]\d*", size), f"{section}: picture not decoded ({size})"
    assert "no WordNet mapping" in page.text["wordnet"]


def test_chromium_screenshot_shows_tables_and_pictures(chromium, report, tmp_path):
    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path, report, f"--screenshot={shot}", "--window-size=1200,3000")
    assert shot.stat().st_size > 50_000
    with Image.open(shot) as image:
        assert image.size == (1200, 3000)
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    # Colour comes only from the figures (curves, viridis heatmaps); text and tables are grey.
    coloured = int((spread > 60).sum())
    dark = int((rgb.max(axis=2) < 100).sum())  # text, lines, the heatmaps' purple
    assert coloured > 100_000, coloured
    assert dark > 20_000, dark
    top = rgb[:300].reshape(-1, 3)
    assert len(np.unique(top, axis=0)) > 10  # the title and the table render, not a blank page


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


def with_the_longest_method_names(page: str, experiment: Path, section: str = "comparison") -> str:
    """``page`` with the table of ``section`` (comparison or calibration) renamed to the longest
    method names."""
    markdown = (experiment / "comparison.md").read_text(encoding="utf-8")
    main, _, calibration = markdown.partition("Calibration of the test predictions")
    markdown = main if section == "comparison" else calibration
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


def test_chromium_fits_the_comparison_table_in_a_1280_px_window(chromium, experiment, report, tmp_path):
    page = report.read_text(encoding="utf-8")
    assert_fits(comparison_widths(chromium, page, tmp_path), "the report")
    # The longest method names too: a name breaks after an underscore rather than widen the table.
    longest = with_the_longest_method_names(page, experiment)
    assert_fits(comparison_widths(chromium, longest, tmp_path), "the longest method names")


def test_chromium_fits_the_calibration_table_in_a_1280_px_window(chromium, experiment, report, tmp_path):
    """Eleven figure columns (T, then five figures raw and scaled), set as the comparison's."""
    page = report.read_text(encoding="utf-8")
    assert_fits(comparison_widths(chromium, page, tmp_path, "calibration"), "the calibration table")
    longest = with_the_longest_method_names(page, experiment, "calibration")
    assert "label_<wbr>embedding_<wbr>fixed" in longest  # each name may break after an underscore
    widths = comparison_widths(chromium, longest, tmp_path, "calibration")
    assert_fits(widths, "the calibration table's longest method names")


# ------------------------------------------------------------------------------ a text comparison

#: A translation comparison in under a minute: a tiny seq2seq, 4 updates, short greedy decodes;
#: 1,500 training pairs give a target vocabulary of more than 4,096 words, where a method that
#: learns no label representation saves none, and label_embedding saves its codes A (m x k).
TEXT_QUICK = [
    "data.max_train_pairs=1500",
    "data.text.vocabulary_size=5000",
    "model.embedding=16",
    "model.hidden=16",
    "model.layers=1",
    "train.max_steps=4",
    "train.batch_size=16",
    "train.eval_every=32",
    "decode.max_length=4",
    "decode.length_ratio=0",
    "decode.beam=1",
]
TEXT_SECTIONS = ["comparison", "curves", "method-onehot", "method-label_embedding"]


@pytest.fixture(scope="module")
def text_experiment(tmp_path_factory, ddtp_dir, one_thread):
    """onehot and label_embedding (variant nlp, compressed) on DDTP en-it, made by `labelemb compare`."""
    root = tmp_path_factory.mktemp("text")
    args = ["--methods", ",".join(METHODS), "--output-dir", str(root), "--data-dir", str(ddtp_dir)]
    config = str(CONFIGS / "ddtp-en-it.yaml")
    assert main(["compare", "--config", config, *args, "--no-progress", *TEXT_QUICK]) == 0
    return root / "ddtp-en-it"


@pytest.fixture(scope="module")
def text_report(text_experiment, one_thread) -> Path:
    return build_report(text_experiment)


@pytest.fixture(scope="module")
def text_page(text_report) -> Page:
    return Page(text_report.read_text(encoding="utf-8"))


def frequent_target_words(run: Path, count: int = 10) -> list[str]:
    """By hand: the run's target vocabulary after <pad> <unk> <s> </s>, punctuation left out."""
    vocabulary = (run / "vocabulary.target.txt").read_text(encoding="utf-8").splitlines()
    assert vocabulary[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    return [word for word in vocabulary[4:] if any(c.isalnum() for c in word)][:count]


def markdown_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]


def test_similar_and_analyze_say_what_a_text_run_without_a_representation_has(
    text_experiment, tmp_path, capsys
):
    run = text_experiment / "onehot" / "seed0"
    labels = len(json.loads((run / "summary.json").read_text())["class_names"])
    assert labels > 4096  # the case at hand: nothing saved in place of a representation
    for argv in (
        ["similar", str(run), "--labels", "di"],
        ["analyze", str(run), "--output-dir", str(tmp_path)],
    ):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert "unknown dataset" not in error and "ddtp-en-it" in error
        assert (
            f"onehot learns no label representation, and above 4,096 labels (this run has {labels:,}) "
            "no mean softmax of its predictions is saved in its place" in error
        )
        assert "--method label_embedding" in error and "data.text.vocabulary_size=4096 or less" in error
    # A run that saved one but lost the file says so, rather than that its method learns none.
    learned = tmp_path / "learned"
    shutil.copytree(text_experiment / "label_embedding" / "seed0", learned)
    (learned / "label_representation.safetensors").unlink()
    assert main(["similar", str(learned), "--labels", "di"]) == 2
    error = capsys.readouterr().err
    assert "the label representation this run saved (learned) is missing" in error
    assert "unknown dataset" not in error


def test_text_report_has_no_wordnet_section_and_no_picture_but_the_curves(text_page):
    assert text_page.sections == TEXT_SECTIONS
    assert [url for url in text_page.urls if url.startswith("#")] == [f"#{s}" for s in TEXT_SECTIONS]
    assert [section for section, _ in text_page.images] == ["curves"]
    png_bytes(text_page.images[0][1]["src"])


def test_text_report_speaks_of_bleu_on_its_0_to_100_scale(text_experiment, text_page):
    whole = " ".join(text_page.text.values())
    for wrong in ("Test error", "test error", "test-accuracy", "WordNet", "Error curves", "--no-analysis"):
        assert wrong not in whole, wrong
    assert "Test BLEU (0-100, higher is better)" in text_page.text["comparison"]
    assert "AUAC is the area under the test-BLEU curve" in text_page.text["comparison"]
    assert "Dev BLEU (0-100, higher is better" in text_page.text["curves"]
    (table,) = text_page.tables_in("comparison")
    header, *rows = table
    assert header[2] == "test BLEU (selected)" and header[6] == "best dev at epoch (stopped early)"
    assert header[8] == "time to onehot's best dev BLEU" and header[9] == "test BLEU at onehot's compute"
    assert header[10] == "AUAC (test BLEU, 0-100)"
    assert [row[0] for row in rows] == list(METHODS)
    for row in rows:  # AUAC by hand: BLEU 0-100 at each check, 0 at epoch 0, over the epochs
        records = [json.loads(line) for line in (text_experiment / row[0] / "seed0" / "metrics.jsonl").open()]
        epochs = [0.0] + [r["epoch"] for r in records]
        bleu = [0.0] + [r["test_bleu"] for r in records]
        area = sum((epochs[i + 1] - epochs[i]) * (bleu[i] + bleu[i + 1]) / 2 for i in range(len(records)))
        assert row[10] == f"{area / epochs[-1]:.2f}"
    assert markdown_rows((text_experiment / "comparison.md").read_text())[2:] == rows


def test_text_report_shows_the_nearest_words_of_frequent_words(text_experiment, text_page, capsys):
    run = text_experiment / "label_embedding" / "seed0"
    words = frequent_target_words(run)
    (table,) = text_page.tables_in("method-label_embedding")
    header, *rows = table
    assert header == ["word", "#1", "#2", "#3", "#4", "#5"]
    assert [row[0] for row in rows] == words and len(words) == 10
    # The cells `labelemb similar --labels` prints for those words, which the page names.
    assert main(["similar", str(run), "--labels", ",".join(words)]) == 0
    assert markdown_rows(capsys.readouterr().out)[2:] == rows
    assert f"labelemb similar {run} --labels {','.join(words)}" in text_page.text["method-label_embedding"]
    # By hand: the compressed embedding's softmax(ReLU(A[y] B + c)) row of the first word.
    weights = torch.load(run / "model.pt", weights_only=True)
    names = json.loads((run / "summary.json").read_text())["class_names"]
    first = names.index(words[0])
    codes, expand, bias = (weights[f"method.{k}"] for k in ("codes", "expand.weight", "expand.bias"))
    soft = torch.softmax(torch.relu(codes[first] @ expand.T + bias), -1)
    soft[first] = -1.0
    top = soft.topk(5)
    assert rows[0][1:] == [f"{names[j]} ({v:.3f})" for v, j in zip(top.values.tolist(), top.indices.tolist())]
    assert "Seed 0, label representation: learned." in text_page.text["method-label_embedding"]


def test_text_report_forms_no_vocabulary_square(text_experiment, tmp_path, monkeypatch):
    """With a compressed embedding only the rows of the shown words are formed."""
    from labelemb.analysis import similarity

    copy = tmp_path / "ddtp-en-it"
    shutil.copytree(text_experiment, copy, ignore=shutil.ignore_patterns("analysis", "report.html"))

    def square(*args, **kwargs):
        raise AssertionError("an m x m similarity was formed")

    monkeypatch.setattr(similarity, "label_similarity_rows", square)
    monkeypatch.setattr(similarity, "label_similarity", square)
    page = Page(build_report(copy).read_text(encoding="utf-8"))
    assert len(page.tables_in("method-label_embedding")[0]) == 11


def test_a_text_method_without_a_representation_says_so_in_one_line(text_experiment, text_page):
    labels = len(
        json.loads((text_experiment / "onehot" / "seed0" / "summary.json").read_text())["class_names"]
    )
    assert not text_page.tables_in("method-onehot")
    lines = [line.strip() for line in text_page.text["method-onehot"].splitlines() if line.strip()]
    assert lines == [
        "onehot",
        f"Seed 0: onehot learns no label representation, and above 4,096 labels (this run has {labels:,}) "
        "no mean softmax of its predictions is saved in its place.",
    ]


def test_text_report_command_with_and_without_analysis(text_experiment, text_report, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(text_experiment), "--output", str(out), "--top", "2", "--no-analysis"]) == 0
    page = Page(out.read_text(encoding="utf-8"))
    assert page.sections == TEXT_SECTIONS
    assert page.tables_in("method-label_embedding")[0][0] == ["word", "#1", "#2"]  # cut from the saved top 5
    assert "--top 2" in page.text["method-label_embedding"]
    assert "no mean softmax" in page.text["method-onehot"]
    # The whole report of a text comparison is made, not refused (it was above 200 labels).
    bare = tmp_path / "bare"
    shutil.copytree(text_experiment, bare, ignore=shutil.ignore_patterns("analysis", "report.html"))
    assert main(["report", str(bare), "--no-analysis"]) == 0
    assert (
        "has not been analysed"
        in Page((bare / "report.html").read_text(encoding="utf-8")).text["method-onehot"]
    )
    assert main(["report", str(bare)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(bare / "report.html")
    page = Page((bare / "report.html").read_text(encoding="utf-8"))
    assert len(page.tables_in("method-label_embedding")[0]) == 11


def test_chromium_renders_the_text_report(chromium, text_report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(
        text_report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    page = Page(run_chromium(chromium, tmp_path, probe, "--dump-dom").stdout.decode("utf-8"))
    assert page.sections == TEXT_SECTIONS
    assert len(page.tables_in("method-label_embedding")[0]) == 11  # header + 10 words
    assert "no mean softmax" in page.text["method-onehot"]
    ((section, attrs),) = page.images
    assert section == "curves" and re.fullmatch(r"[1-9]\d*x[1-9]\d*", attrs.get("data-decoded", ""))
    widths = comparison_widths(chromium, text_report.read_text(encoding="utf-8"), tmp_path)
    assert_fits(widths, "a text report")
