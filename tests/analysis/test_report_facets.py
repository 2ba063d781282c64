"""`labelemb report` on runs whose tags come in facets (analysis/report_facets.py): each method's
facet pictures and nearest tags in its section, and the facet agreement of every seed in place of
the WordNet section. The runs are trained for real: onehot, two seeds, on 210 tags in 21 facets."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from helpers.report_checks import Page, png_bytes
from helpers.tagged_texts import TAGGED_FILES, write_faceted_splits

from labelemb.analysis.facet_pictures import facet_figures
from labelemb.analysis.report import build_report
from labelemb.analysis.report_facets import FACETS_FILE, FACETS_SECTION
from labelemb.analysis.representation import run_representation
from labelemb.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def faceted(tmp_path_factory) -> Path:
    """A comparison of onehot over seeds 0 and 1 on :func:`write_faceted_splits`' tags."""
    root = tmp_path_factory.mktemp("faceted")
    (root / "data").mkdir()
    data = write_faceted_splits(root / "data")
    config = {
        "experiment": "faceted",
        "data": {
            "name": "files",
            "dir": str(data),
            "files": dict(TAGGED_FILES),
        },
        "model": {"name": "bag_of_words", "embedding_dim": 16, "bigram_buckets": 16},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05},
    }
    (root / "faceted.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", str(root / "faceted.yaml"), "--methods", "onehot", "--seeds", "0-1"]
    assert main(["compare", *args, "--output-dir", str(root), "--no-progress"]) == 0
    return root / "faceted"


@pytest.fixture(scope="module")
def html(faceted) -> str:
    return build_report(faceted, top=3).read_text()


def test_each_method_shows_its_facet_pictures_and_nearest_tags(faceted, html):
    page = Page(html)
    pictures = [attrs for section, attrs in page.images if section == "method-onehot"]
    assert len(pictures) == 2  # the facet heatmap and the dendrogram
    for attrs in pictures:
        png_bytes(attrs["src"])
    text = page.text["method-onehot"]
    analysed = json.loads((faceted / "analysis" / "onehot-seed0" / "analysis.json").read_text())
    near = 100 * analysed["facets"]["facet_nearest"]
    assert f"in its own facet for {near:.1f} % of the tags" in text
    assert "Most similar tags (top 3)" in text and "has not been analysed" not in text
    (table,) = page.tables_in("method-onehot")
    assert len(table) == 1 + 210 and len(table[0]) == 1 + 3


def test_the_facets_take_the_wordnet_section_s_place_over_every_seed(faceted, html):
    page = Page(html)
    assert FACETS_SECTION in page.sections and "wordnet" not in page.sections
    assert f"#{FACETS_SECTION}" in page.urls
    seeds = [run_representation(faceted / "onehot" / f"seed{seed}") for seed in (0, 1)]
    figures = [facet_figures(rep)["facet_pair_auroc"] for rep in seeds]
    saved = json.loads((faceted / "analysis" / FACETS_FILE).read_text())
    auroc = saved["facets_by_method"]["onehot"]["facet_pair_auroc"]
    assert auroc["runs"] == 2
    assert auroc["mean"] == pytest.approx(statistics.mean(figures))
    assert auroc["std"] == pytest.approx(statistics.stdev(figures))
    ((header, row),) = page.tables_in(FACETS_SECTION)
    assert row[:2] == ["onehot", "2"]
    assert (
        row[header.index("same-facet pair AUROC")]
        == f"{100 * auroc['mean']:.1f} ± {100 * auroc['std']:.1f} %"
    )


def test_the_page_speaks_of_the_score_not_an_error(html):
    page = Page(html)
    assert "Test macro mAP curves" in page.text["curves"]
    assert "error" not in page.text["curves"] + page.text["comparison"].partition("p is Welch")[0]


def test_a_report_without_analysis_reuses_the_facet_figures(faceted, html):
    again = Page(build_report(faceted, top=3, analyze_runs=False).read_text())
    page = Page(html)
    for section in (FACETS_SECTION, "method-onehot"):
        assert again.text[section] == page.text[section]
        assert again.tables_in(section) == page.tables_in(section)


def test_the_comparison_and_the_page_give_the_tag_figures_and_the_calibration_per_tag(faceted, html):
    summaries = [json.loads((faceted / "onehot" / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    ece = [summary["selected_test_tag_ece"] for summary in summaries]
    expected = f"| onehot | {statistics.mean(ece):.2f} ± {statistics.stdev(ece):.2f} | - |"
    written = (faceted / "comparison.md").read_text()
    assert "Calibration per tag on test" in written and "Beside macro mAP" in written
    assert any(line.startswith(expected) for line in written.splitlines())
    tables = Page(html).tables_in("comparison")
    calibration = next(t for t in tables if t[0][1:3] == ["raw", "p"])
    assert calibration[1][:3] == ["onehot", f"{statistics.mean(ece):.2f} ± {statistics.stdev(ece):.2f}", "-"]
