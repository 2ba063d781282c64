"""labelemb report's "Knowing when it is wrong": the risk-coverage figure drawn from the curves the
runs' evaluation.json records (each seed light, the mean bold), and what the page says of runs whose
record lacks the curve (evaluated before runs kept it, or not evaluated), which it never computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.report_checks import METHODS, Page

from labelemb.analysis import curves
from labelemb.analysis.compare import load_runs
from labelemb.analysis.report import build_report
from labelemb.analysis.report_page import BEYOND_ERROR_SECTION as JUDGED
from labelemb.cli import main
from labelemb.metrics.selective import RISK_CURVE
from labelemb.rundir import EVALUATION_FILE


def copy_of(experiment: Path, tmp_path: Path) -> Path:
    """The comparison's runs, without what a report left beside them."""
    copy = tmp_path / "rep"
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("analysis", "report.html"))
    return copy


def drop_curve(run: Path) -> None:
    """``run``'s evaluation.json as runs wrote it before they kept the curve."""
    record = json.loads((run / EVALUATION_FILE).read_text())
    del record["test"][RISK_CURVE]
    (run / EVALUATION_FILE).write_text(json.dumps(record))


def judged_section(experiment: Path) -> tuple[Page, str]:
    """The report's page (without the analysis) and its beyond-error section's text, spaces joined."""
    page = Page(build_report(experiment, analyze_runs=False).read_text(encoding="utf-8"))
    return page, " ".join(page.text.get(JUDGED, "").split())


def test_the_figure_draws_each_seed_light_and_the_mean_of_the_recorded_curves_bold(
    experiment, tmp_path, monkeypatch
):
    drawn = []

    def keep(figure, path):
        drawn.append(figure)
        return path

    monkeypatch.setattr(curves, "save_figure", keep)
    runs = load_runs(experiment)
    assert curves.plot_risk_coverage(runs, tmp_path / "rc.png") == tmp_path / "rc.png"
    (axes,) = drawn[0].axes
    lines = axes.get_lines()
    assert len(lines) == 3 * len(METHODS)  # two seeds and their mean per method
    for method, (first, second, mean) in zip(sorted(METHODS), zip(*[iter(lines)] * 3)):
        records = [experiment / method / f"seed{seed}" / EVALUATION_FILE for seed in (0, 1)]
        recorded = [np.array(json.loads(path.read_text())["test"][RISK_CURVE]) for path in records]  # %
        for line, curve in ((first, recorded[0]), (second, recorded[1])):
            assert np.allclose(line.get_ydata(), curve) and line.get_linewidth() < 1 and line.get_alpha() < 1
        assert np.allclose(mean.get_ydata(), (recorded[0] + recorded[1]) / 2)
        assert mean.get_linewidth() == 2 and mean.get_alpha() is None
        assert mean.get_label() == f"{method} (n=2)"
        assert np.allclose(mean.get_xdata(), np.linspace(0, 100, 101))
        # At full coverage the risk is the test error; the curve is a run's, not a refit.
        errors = [json.loads((experiment / method / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
        assert mean.get_ydata()[-1] == pytest.approx(np.mean([e["selected_test_error"] for e in errors]))
    assert first.get_color() != lines[0].get_color()  # a colour per method


def test_runs_without_the_curve_are_left_out_of_the_figure_and_named_never_computed(experiment, tmp_path):
    copy = copy_of(experiment, tmp_path)
    drop_curve(copy / "onehot" / "seed1")
    (copy / "label_embedding" / "seed0" / EVALUATION_FILE).unlink()
    page, text = judged_section(copy)
    assert [section for section, _ in page.images].count(JUDGED) == 1  # the others' curves are drawn
    assert (
        "Left out of the figure, without a risk-coverage curve in their evaluation.json: onehot seed 1 "
        "(evaluated before runs kept the curve), label_embedding seed 0 (not evaluated). "
        f"labelemb evaluate {copy} --refresh adds it from the saved weights." in text
    )
    # Nothing was computed: the records are as they were left.
    assert RISK_CURVE not in json.loads((copy / "onehot" / "seed1" / EVALUATION_FILE).read_text())["test"]
    assert not (copy / "label_embedding" / "seed0" / EVALUATION_FILE).exists()
    # A method with a run not evaluated has no figure in the table ('-'), its other run is drawn.
    selective = page.tables_in(JUDGED)[0]
    assert selective[2][0] == "label_embedding" and selective[2][2] == "-"


def test_without_any_curve_the_section_says_so_and_evaluate_refresh_adds_them(experiment, tmp_path, capsys):
    copy = copy_of(experiment, tmp_path)
    for method in METHODS:
        for seed in (0, 1):
            drop_curve(copy / method / f"seed{seed}")
    page, text = judged_section(copy)
    assert JUDGED in page.sections and len(page.tables_in(JUDGED)) == 2  # the tables, without a figure
    assert JUDGED not in [section for section, _ in page.images]
    assert "No figure, without a risk-coverage curve in their evaluation.json: onehot seed 0" in text
    # What the page says to run adds the curves from the saved weights.
    assert main(["evaluate", str(copy), "--refresh", "--no-progress"]) == 0
    capsys.readouterr()
    page, text = judged_section(copy)
    assert JUDGED in [section for section, _ in page.images] and "Left out" not in text


def test_runs_never_evaluated_have_no_such_section(experiment, tmp_path):
    copy = copy_of(experiment, tmp_path)
    for path in copy.glob(f"*/seed*/{EVALUATION_FILE}"):
        path.unlink()
    page, _ = judged_section(copy)
    assert JUDGED not in page.sections and f"#{JUDGED}" not in page.urls
    assert "calibration" in page.sections
