"""A tag comparison's tables (analysis/tag_table.py): each figure beside macro mAP and the
calibration per tag, mean ± std over seeds with Welch's p against the baseline, from summaries
built by hand; a figure no run has is no column, and single-label runs get no table."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats

from labelemb.analysis.compare import welch_p
from labelemb.analysis.tag_table import TAG_CALIBRATION, TAG_FIGURES, tag_blocks, tag_statistics

#: Three seeds each, every figure the tables show: a value per seed.
BASE = [
    {f"selected_test_{n}": v + i for i, n in enumerate((*TAG_FIGURES, *TAG_CALIBRATION))} for v in (1, 2, 4)
]
OTHER = [
    {f"selected_test_{n}": v + 2 * i for i, n in enumerate((*TAG_FIGURES, *TAG_CALIBRATION))}
    for v in (3, 5, 6)
]


def test_each_figure_gets_its_mean_std_and_welch_p_against_the_baseline():
    row = tag_statistics(OTHER, BASE, welch_p)
    for name in (*TAG_FIGURES, *TAG_CALIBRATION):
        values = [s[f"selected_test_{name}"] for s in OTHER]
        against = [s[f"selected_test_{name}"] for s in BASE]
        assert row[f"tags_{name}_mean"] == pytest.approx(statistics.mean(values))
        assert row[f"tags_{name}_std"] == pytest.approx(statistics.stdev(values))
        assert row[f"tags_{name}_p_value"] == pytest.approx(
            stats.ttest_ind(values, against, equal_var=False).pvalue
        )
    baseline = tag_statistics(BASE, None, welch_p)
    assert baseline["tags_tag_ece_mean"] == pytest.approx(
        statistics.mean(s["selected_test_tag_ece"] for s in BASE)
    )
    assert baseline["tags_tag_ece_p_value"] is None


def test_a_figure_a_run_lacks_is_left_out_and_single_label_runs_have_none():
    lacking = [dict(OTHER[0]), *OTHER[1:]]
    del lacking[0]["selected_test_rest_map_macro"]
    row = tag_statistics(lacking, BASE, welch_p)
    assert "tags_rest_map_macro_mean" not in row and "tags_map_micro_mean" in row
    assert tag_statistics([{"selected_test_error": 10.0}] * 2, None, welch_p) == {}


def test_the_tables_show_each_figure_with_its_p_and_leave_out_what_no_row_has():
    without_rest = [{k: v for k, v in s.items() if "rest_" not in k} for s in (BASE, OTHER) for s in s]
    rows = [
        {"method": "onehot", **tag_statistics(without_rest[:3], None, welch_p)},
        {"method": "asl", **tag_statistics(without_rest[3:], without_rest[:3], welch_p)},
    ]
    figures, calibration = tag_blocks(rows, "onehot")
    head, rule, onehot, asl = figures.markdown.splitlines()
    assert head.split(" | ")[1:5] == ["micro mAP %", "p", "macro-F1 %", "p"] and "rest" not in head
    micro = [s["selected_test_map_micro"] for s in without_rest[3:]]
    p = stats.ttest_ind(
        micro, [s["selected_test_map_micro"] for s in without_rest[:3]], equal_var=False
    ).pvalue
    cells = asl.strip("| ").split(" | ")
    assert cells[:3] == ["asl", f"{statistics.mean(micro):.2f} ± {statistics.stdev(micro):.2f}", f"{p:.2g}"]
    assert onehot.strip("| ").split(" | ")[2] == "-"  # the baseline has no p
    assert calibration.markdown.splitlines()[0].split(" | ")[1:] == [
        "raw",
        "p",
        "one temperature",
        "p",
        "a temperature per tag",
        "p |",
    ]
    assert tag_blocks([{"method": "onehot", "selected_mean": 10.0}], "onehot") == []
