"""labelemb report: one self-contained HTML page, checked as a file and in a real headless Chromium.

The comparison directory is made by actually training onehot and label_embedding over two seeds
on the bundled digits (a 64-16-10 MLP, two epochs). The browser tests need Debian's ``chromium``
and the fonts the page is set in (``apt-get install -y --no-install-recommends chromium
fonts-liberation``); without them they FAIL (never skip).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.browser import run_chromium
from helpers.repo_paths import DOCS
from helpers.report_checks import (
    DATA_PNG,
    METHODS,
    PNG_MAGIC,
    PROBE,
    Page,
    assert_fits,
    comparison_widths,
    markdown_tables,
    png_bytes,
    section_markdown,
    with_the_longest_method_names,
)
from PIL import Image
from safetensors.torch import save_file

from labelemb.analysis.report import build_report
from labelemb.analysis.report_html import markdown_table_html, png_data_uri
from labelemb.analysis.report_page import BEYOND_ERROR_SECTION as JUDGED
from labelemb.analysis.report_page import render_report
from labelemb.analysis.report_sources import SOURCES_FILE, StaleAnalysis, run_digest
from labelemb.analysis.representation import run_representation
from labelemb.cli import main
from labelemb.rundir import TENSORS_FILE


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
    assert set(by_section) == {"curves", "calibration", JUDGED, *(f"method-{m}" for m in METHODS)}
    analysis = experiment / "analysis"
    assert by_section["curves"] == (analysis / "curves.png").read_bytes()
    assert by_section["calibration"] == (analysis / "reliability.png").read_bytes()
    assert by_section[JUDGED] == (analysis / "risk-coverage.png").read_bytes()
    for method in METHODS:
        assert by_section[f"method-{method}"] == (analysis / f"{method}-seed0" / "heatmap.png").read_bytes()
    assert all(attrs.get("alt") for _, attrs in page.images)


#: The report's sections, in order, for the onehot and label_embedding runs of the fixture.
SECTIONS = ["comparison", "curves", "calibration", JUDGED]
SECTIONS += ["method-onehot", "method-label_embedding", "wordnet"]


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
    table, *maps = page.tables_in("calibration")  # then the richer maps' table, where runs have it
    assert len(maps) <= 1
    assert table == calibration_markdown_rows(experiment)[: len(table)]  # the cells of compare's own table
    assert table[0][:4] == ["method", "T", "ECE %", "ECE % scaled"] and table[0][-1] == "Brier scaled"
    assert [row[0] for row in table[1:]] == list(METHODS)
    assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", cell) for row in table[1:] for cell in row[1:4])
    text = page.text["calibration"]
    assert "scaled by the temperature T each run fit on its dev split" in text
    assert "Scaling keeps the ECE order of the methods" in text or "scaling reorders the methods" in text
    assert "Each method's diagram raw, then scaled beside it" in text
    ((_, image),) = [(s, attrs) for s, attrs in page.images if s == "calibration"]
    assert image["alt"].endswith("raw and scaled")


def test_knowing_when_it_is_wrong_has_the_tables_of_compare_and_the_risk_coverage_curves(experiment, page):
    """The beyond-error tables of comparison.md (selective classification, then the OOD set's), each
    with the lines under it, and the figure of every run (none left out)."""
    tables = page.tables_in(JUDGED)
    assert tables == markdown_tables(section_markdown((experiment / "comparison.md").read_text(), "all"))
    selective, patches = tables
    assert selective[0][:4] == ["method", "error %", "AURC %", "p vs onehot"]
    assert patches[0][:2] == ["method", "MSP AUROC %"]
    assert [row[0] for row in selective[1:]] == [row[0] for row in patches[1:]] == list(METHODS)
    assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", cell) for row in selective[1:] for cell in row[2:3])
    text = " ".join(page.text[JUDGED].split())
    assert "Knowing when it is wrong, on the test split at the check each run selects" in text
    assert "AURC: the area under the risk-coverage curve" in text
    assert "the methods rank as by error" in text or "Ranked by AURC rather than by error" in text
    assert "Out-of-distribution inputs: patches against the test split" in text
    assert "Risk-coverage curves of the test split" in text
    assert "each seed thin, the mean over seeds bold" in text
    assert "Left out" not in text and "No figure" not in text
    ((_, image),) = [(s, attrs) for s, attrs in page.images if s == JUDGED]
    assert image["alt"] == "risk-coverage curves of each method on the test split"


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
    from labelemb.version import code_version

    header = page.text[None]
    assert f"labelemb report {report.parent}" in header and "--top 3" in header
    assert f"labelemb {__version__}" in header
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", header)
    assert "Dataset digits, model mlp, 2 epochs; 2 methods, 4 runs (seeds 0, 1)" in header
    # The code that trained them: this checkout's, for each of the four runs.
    trained = "The code that trained the runs (how many it trained, wholly or in part): labelemb"
    assert f"{trained} {code_version()} (4)." in header


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


def test_a_report_without_analysis_refuses_one_made_from_other_runs(experiment, report, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(experiment, copy)
    analysed = json.loads((copy / "analysis" / SOURCES_FILE).read_text())
    assert sorted(analysed) == sorted(f"{m}/seed{s}" for m in METHODS for s in (0, 1))  # all seeds: WordNet
    assert analysed["onehot/seed1"] == run_digest(copy / "onehot" / "seed1") != ""
    build_report(copy, top=3, analyze_runs=False)  # the same runs: reused
    # onehot seed 1 trained again (another representation): its WordNet figure would be stale.
    representation = copy / "onehot" / "seed1" / TENSORS_FILE
    save_file({"representation": torch.rand(10, 10)}, representation)
    before = (copy / "report.html").read_bytes()
    with pytest.raises(StaleAnalysis, match=r"changed or gone since \(onehot/seed1\); run `labelemb report"):
        build_report(copy, top=3, analyze_runs=False)
    assert main(["report", str(copy), "--no-analysis"]) == 2
    assert "without --no-analysis" in capsys.readouterr().err
    assert (copy / "report.html").read_bytes() == before  # refused before anything was written
    shutil.rmtree(copy / "label_embedding" / "seed1")  # a run gone counts as changed
    build_report(copy, top=3)  # analysed again: the current runs recorded
    assert "label_embedding/seed1" not in json.loads((copy / "analysis" / SOURCES_FILE).read_text())
    build_report(copy, top=3, analyze_runs=False)
    # An analysis that does not say which runs it was made from (an older labelemb's) is not reused.
    (copy / "analysis" / SOURCES_FILE).unlink()
    with pytest.raises(StaleAnalysis, match="does not record which runs it was made from"):
        build_report(copy, top=3, analyze_runs=False)


# ------------------------------------------------------------------------------------ the browser


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
    assert set(decoded) == {"curves", "calibration", JUDGED, "method-onehot", "method-label_embedding"}
    for section, size in decoded.items():
        assert size and re.fullmatch(r"[1-9]\d*x[1-9]\d*", size), f"{section}: picture not decoded ({size})"
    assert "no WordNet mapping" in page.text["wordnet"]


def test_chromium_screenshot_shows_tables_and_pictures(chromium, report, tmp_path):
    shot = tmp_path / "report.png"
    # Tall enough to reach the first heatmap, below the calibration and beyond-error sections.
    run_chromium(chromium, tmp_path, report, f"--screenshot={shot}", "--window-size=1200,5000")
    assert shot.stat().st_size > 50_000
    with Image.open(shot) as image:
        assert image.size == (1200, 5000)
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    # Colour comes only from the figures (curves, viridis heatmaps); text and tables are grey.
    coloured = int((spread > 60).sum())
    dark = int((rgb.max(axis=2) < 100).sum())  # text, lines, the heatmaps' purple
    assert coloured > 100_000, coloured
    assert dark > 20_000, dark
    top = rgb[:300].reshape(-1, 3)
    assert len(np.unique(top, axis=0)) > 10  # the title and the table render, not a blank page


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


def test_chromium_fits_the_knowing_when_it_is_wrong_tables_in_a_1280_px_window(
    chromium, experiment, report, tmp_path
):
    """The selective-classification table: nine figure columns, set as the comparison's."""
    page = report.read_text(encoding="utf-8")
    assert_fits(comparison_widths(chromium, page, tmp_path, JUDGED), "the selective-classification table")
    longest = with_the_longest_method_names(page, experiment, JUDGED)
    assert "label_<wbr>embedding_<wbr>fixed" in longest
    widths = comparison_widths(chromium, longest, tmp_path, JUDGED)
    assert_fits(widths, "the selective-classification table's longest method names")
