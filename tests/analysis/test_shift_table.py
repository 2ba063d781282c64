"""The comparison's under-shift table (each run's shift.json): the mean corruption error against
onehot by hand, the conditions every run has (and those left out), runs without the record, the
error-against-severity figure, and the report's section, which fits a 1280-px window."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from helpers.report_checks import METHODS, Page, assert_fits, comparison_widths, with_the_longest_method_names
from scipy import stats

from labelemb.analysis import curves
from labelemb.analysis.compare import comparison_rows, load_runs
from labelemb.analysis.comparison_table import format_csv, format_markdown
from labelemb.analysis.report import ERROR_SEVERITY_FILE, build_report
from labelemb.analysis.report_shift import SHIFT_SECTION
from labelemb.experiment import write_comparison
from labelemb.metrics.shift import mean_corruption_error
from labelemb.rundir import SHIFT_FILE, RunDir

#: Each seed's error (%) under each condition: two corruptions at two severities.
ERRORS = {
    "onehot": [
        {"rotate@1": 10.0, "rotate@2": 30.0, "shot_noise@1": 4.0, "shot_noise@2": 8.0},
        {"rotate@1": 20.0, "rotate@2": 30.0, "shot_noise@1": 6.0, "shot_noise@2": 12.0},
    ],
    "other": [
        {"rotate@1": 9.0, "rotate@2": 18.0, "shot_noise@1": 6.0, "shot_noise@2": 10.0},
        {"rotate@1": 9.0, "rotate@2": 18.0, "shot_noise@1": 8.0, "shot_noise@2": 12.0},
    ],
}
CLEAN = {"onehot": [2.0, 3.0], "other": [1.0, 2.0]}


def condition(key: str, error: float) -> dict:
    """A condition's entry as shift_run records it (the ECE, its scaled value and the AURC derived
    from the error, so that their means are known)."""
    name, _, severity = key.partition("@")
    return {
        "corruption": name,
        "severity": int(severity),
        "definition": "0" * 16,
        "seed": 0,
        "error": error,
        "ece": error / 2,
        "ece_scaled": error / 4,
        "nll": 0.5,
        "nll_scaled": 0.4,
        "aurc": error / 5,
    }


def write_run(root: Path, method: str, seed: int, errors: dict[str, float] | None, clean: float) -> Path:
    """A finished classification run, with a shift.json of ``errors`` (none where None)."""
    run_dir = root / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    check = {"step": 1, "epoch": 1.0, "train_seconds": 1.0, "dev_error": clean, "test_error": clean}
    (run_dir / "metrics.jsonl").write_text(json.dumps(check) + "\n")
    summary = {"method": method, "seed": seed, "selected_test_error": clean, "final_test_error": clean}
    (run_dir / "summary.json").write_text(json.dumps({**summary, "seconds_per_epoch": 1.0}))
    if errors is not None:
        RunDir(run_dir).write_shift(shift_record(errors, clean))
    return run_dir


def shift_record(errors: dict[str, float], clean: float) -> dict:
    figures = {"error": clean, "ece": 1.0, "ece_scaled": 0.5, "nll": 0.1, "nll_scaled": 0.1, "aurc": 0.3}
    return {
        "format": 1,
        "labelemb": "test",
        "selected_step": 1,
        "weights": "w",
        "data": "d",
        "temperature": 1.5,
        "seed": 0,
        "clean": figures,
        "conditions": {key: condition(key, error) for key, error in errors.items()},
    }


def write_comparison_runs(root: Path, errors: dict = ERRORS) -> Path:
    for method, seeds in errors.items():
        for seed, by_condition in enumerate(seeds):
            write_run(root, method, seed, by_condition, CLEAN[method][seed])
    return root


def shift_rows(root: Path) -> dict[str, dict]:
    return {row["method"]: row for row in comparison_rows(load_runs(root))}


def shift_table(markdown: str) -> list[list[str]]:
    """The under-shift table of a comparison.md, its rule left out."""
    block = markdown.partition("Under shift: ")[2]
    lines = [line for line in block.splitlines() if line.startswith("|") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_mean_corruption_error_against_onehot_by_hand(tmp_path):
    rows = shift_rows(write_comparison_runs(tmp_path))
    onehot, other = rows["onehot"], rows["other"]
    # Seed means: onehot rotate 15, 30 (sum 45), shot_noise 5, 10 (15); other rotate 9, 18 (27),
    # shot_noise 7, 11 (18). CE: rotate 27 / 45 = 0.6, shot_noise 18 / 15 = 1.2; mCE = 100 x 0.9.
    assert other["shift_mce"] == pytest.approx(90.0)
    assert onehot["shift_mce"] == 100.0  # the baseline by definition
    # Not the ratio of the mean errors (11.25 / 15 = 75): each corruption counts alike.
    assert other["shift_error_mean"] == pytest.approx(11.25)
    # Each seed's mean over the four conditions: other 10.75, 11.75; onehot 13, 17.
    assert other["shift_error_std"] == pytest.approx(statistics.stdev([10.75, 11.75]))
    welch = stats.ttest_ind([10.75, 11.75], [13.0, 17.0], equal_var=False).pvalue
    assert other["shift_error_p_value"] == pytest.approx(welch)
    assert onehot["shift_error_p_value"] is None
    assert other["shift_clean_error_mean"] == pytest.approx(1.5)
    assert other["shift_ece_mean"] == pytest.approx(11.25 / 2)
    assert other["shift_ece_scaled_mean"] == pytest.approx(11.25 / 4)
    assert other["shift_aurc_mean"] == pytest.approx(11.25 / 5)
    assert (other["shift_conditions"], other["shift_corruptions"], other["shift_left_out"]) == (4, 2, "")
    table = shift_table(format_markdown(list(rows.values())))
    assert table == [
        ["method", "clean error %", "error % under shift", "p vs onehot", "mCE", "ECE % -> scaled", "AURC %"],
        ["onehot", "2.50 ± 0.71", "15.00 ± 2.83", "-", "100.0", "7.50 -> 3.75", "3.00"],
        ["other", "1.50 ± 0.71", "11.25 ± 0.71", f"{welch:.2g}", "90.0", "5.62 -> 2.81", "2.25"],
    ]


def test_the_mean_corruption_error_compares_the_same_conditions_only():
    errors = {("rotate", 1): 9.0, ("rotate", 2): 18.0}
    assert mean_corruption_error(errors, {("rotate", 1): 15.0, ("rotate", 2): 30.0}) == pytest.approx(60.0)
    with pytest.raises(ValueError, match=r"compares the same conditions: \[\('rotate', 2\)\]"):
        mean_corruption_error(errors, {("rotate", 1): 15.0})
    # A baseline that never errs under a corruption leaves its CE without a denominator.
    assert mean_corruption_error(errors, {("rotate", 1): 0.0, ("rotate", 2): 0.0}) is None


def test_only_the_conditions_every_run_has_are_averaged_and_the_others_are_named(tmp_path):
    errors = {method: [dict(seed) for seed in seeds] for method, seeds in ERRORS.items()}
    errors["onehot"][0]["stripe@1"] = 99.0
    errors["other"][1]["zigzag@3"] = 99.0
    rows = shift_rows(write_comparison_runs(tmp_path, errors))
    assert rows["other"]["shift_mce"] == pytest.approx(90.0)  # as without the extra conditions
    assert rows["other"]["shift_error_mean"] == pytest.approx(11.25)
    markdown = format_markdown(list(rows.values()))
    assert (
        "Means over the conditions that every shifted run has (conditions: 4, corruptions: 2). Left "
        "out, as not every run has them: stripe@1, zigzag@3." in markdown
    )


def test_runs_without_shift_json_read_as_before_with_dashes_and_no_table(tmp_path):
    root = write_comparison_runs(tmp_path)
    (root / "other" / "seed1" / SHIFT_FILE).unlink()
    rows = shift_rows(root)
    assert rows["other"]["shift_error_mean"] is None and rows["other"]["shift_mce"] is None
    table = shift_table(format_markdown(list(rows.values())))
    assert table[2] == ["other", "-", "-", "-", "-", "-", "-"]
    assert table[1][4] == "100.0"
    # Without onehot's records there is no baseline for the mCE.
    for seed in (0, 1):
        (root / "onehot" / f"seed{seed}" / SHIFT_FILE).unlink()
    RunDir(root / "other" / "seed1").write_shift(shift_record(ERRORS["other"][1], 2.0))
    rows = shift_rows(root)
    assert rows["other"]["shift_error_mean"] is not None and rows["other"]["shift_mce"] is None
    assert shift_table(format_markdown(list(rows.values())))[2][4] == "-"
    # No run shifted at all: no table, and the CSV's shift columns are empty.
    for path in root.glob(f"*/seed*/{SHIFT_FILE}"):
        path.unlink()
    rows = list(shift_rows(root).values())
    assert "Under shift" not in format_markdown(rows)
    read = list(csv.DictReader(io.StringIO(format_csv(rows))))
    assert read[0]["shift_mce"] == "" and list(read[0])[-1] == "metric"


def test_the_csv_has_the_shift_statistics_before_the_metric(tmp_path):
    rows = comparison_rows(load_runs(write_comparison_runs(tmp_path)))
    read = {row["method"]: row for row in csv.DictReader(io.StringIO(format_csv(rows)))}
    assert float(read["other"]["shift_mce"]) == pytest.approx(90.0)
    assert float(read["other"]["shift_error_mean"]) == pytest.approx(11.25)
    assert list(read["other"])[-1] == "metric"


def test_the_figure_draws_the_error_against_severity_of_the_corruptions_at_several(tmp_path, monkeypatch):
    errors = {method: [{**seed, "stripe@1": 50.0} for seed in seeds] for method, seeds in ERRORS.items()}
    runs = load_runs(write_comparison_runs(tmp_path / "runs", errors))
    drawn = []
    real = curves.save_figure

    def keep(figure, path):
        drawn.append(figure)
        return real(figure, path)

    monkeypatch.setattr(curves, "save_figure", keep)
    path = tmp_path / "severity.png"
    assert curves.plot_error_severity(runs, path) == path
    assert path.read_bytes().startswith(b"\x89PNG")
    (axes,) = drawn[0].axes
    lines = axes.get_lines()
    assert len(lines) == 3 * 2  # two seeds and their mean per method
    onehot_mean, other_mean = lines[2], lines[5]  # methods by name: onehot, then other
    assert onehot_mean.get_label() == "onehot (n=2)" and other_mean.get_label() == "other (n=2)"
    assert list(onehot_mean.get_xdata()) == [0.0, 1.0, 2.0]
    # Severity 0 is the clean error; stripe (one severity) is left to the table.
    assert np.allclose(onehot_mean.get_ydata(), [2.5, (15 + 5) / 2, (30 + 10) / 2])
    assert np.allclose(other_mean.get_ydata(), [1.5, (9 + 7) / 2, (18 + 11) / 2])
    assert shift_rows(tmp_path / "runs")["other"]["shift_conditions"] == 5


def test_no_figure_without_a_corruption_at_two_severities(tmp_path):
    errors = {method: [{"stripe@1": 5.0, "rotate@2": 6.0} for _ in range(2)] for method in ERRORS}
    runs = load_runs(write_comparison_runs(tmp_path / "runs", errors))
    assert curves.plot_error_severity(runs, tmp_path / "severity.png") is None
    assert not (tmp_path / "severity.png").exists()


@pytest.fixture(scope="module")
def shifted(experiment, tmp_path_factory) -> Path:
    """The report's comparison, its runs given shift records (one left without), comparison.md
    written again."""
    copy = tmp_path_factory.mktemp("shifted") / "rep"
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("analysis", "report.html"))
    for number, method in enumerate(METHODS):
        for seed in (0, 1):
            if (method, seed) == ("label_embedding", 1):
                continue
            by_condition = {
                f"{name}@{s}": 10.0 * s + number + seed for name in ("rotate", "fog") for s in (1, 2, 3)
            }
            clean = json.loads((copy / method / f"seed{seed}" / "summary.json").read_text())[
                "selected_test_error"
            ]
            RunDir(copy / method / f"seed{seed}").write_shift(shift_record(by_condition, clean))
    write_comparison(copy)
    return copy


def test_the_report_shows_the_table_of_compare_the_figure_and_the_run_without_a_record(shifted):
    page = Page(build_report(shifted, analyze_runs=False).read_text(encoding="utf-8"))
    assert SHIFT_SECTION in page.sections and f"#{SHIFT_SECTION}" in page.urls
    assert page.tables_in(SHIFT_SECTION) == [shift_table((shifted / "comparison.md").read_text())]
    assert [section for section, _ in page.images].count(SHIFT_SECTION) == 1
    assert (shifted / "analysis" / ERROR_SEVERITY_FILE).read_bytes().startswith(b"\x89PNG")
    text = " ".join(page.text[SHIFT_SECTION].split())
    assert "conditions: 6, corruptions: 2" in text
    assert f"Without a shift.json: label_embedding seed 1. labelemb shift {shifted} adds it" in text


def test_a_comparison_never_shifted_has_no_such_section(shifted, tmp_path):
    copy = tmp_path / "rep"
    shutil.copytree(shifted, copy, ignore=shutil.ignore_patterns("analysis", "report.html", SHIFT_FILE))
    page = Page(build_report(copy, analyze_runs=False).read_text(encoding="utf-8"))
    assert SHIFT_SECTION not in page.sections and f"#{SHIFT_SECTION}" not in page.urls
    assert not (copy / "analysis" / ERROR_SEVERITY_FILE).exists()


def test_chromium_fits_the_under_shift_table_in_a_1280_px_window(chromium, shifted, tmp_path):
    page = build_report(shifted, analyze_runs=False).read_text(encoding="utf-8")
    assert_fits(comparison_widths(chromium, page, tmp_path, SHIFT_SECTION), "the under-shift table")
    longest = with_the_longest_method_names(page, shifted, SHIFT_SECTION)
    assert "label_<wbr>embedding_<wbr>fixed" in longest
    widths = comparison_widths(chromium, longest, tmp_path, SHIFT_SECTION)
    assert_fits(widths, "the under-shift table's longest method names")
