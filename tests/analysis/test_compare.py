"""The comparison harness: statistics by hand on synthetic runs, resuming, and the command."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import pytest
from scipy import stats

from labelemb.analysis.compare import auac, comparison_rows, load_runs, reported_metric, welch_p
from labelemb.analysis.comparison_table import format_csv, format_markdown
from labelemb.analysis.report_page import render_report
from labelemb.cli import main
from labelemb.sweep.grid import run_grid
from labelemb.training import build_config


def write_run(root: Path, method: str, seed: int, dev: list[float], test: list[float], seconds: list[float]):
    run_dir = root / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    records = [
        {"step": i + 1, "epoch": float(i + 1), "train_seconds": s, "dev_error": d, "test_error": t}
        for i, (d, t, s) in enumerate(zip(dev, test, seconds))
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    best = min(records, key=lambda r: (r["dev_error"], r["step"]))
    summary = {
        "method": method,
        "seed": seed,
        "selected_test_error": best["test_error"],
        "final_test_error": records[-1]["test_error"],
        "seconds_per_epoch": seconds[-1] / len(seconds),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def synthetic(tmp_path):
    # onehot: mean dev curve 6, 4, 3, 3 -> best 3 first reached at check 3 (mean 30 s).
    write_run(tmp_path, "onehot", 0, [6, 4, 3, 3], [7, 5, 4, 4], [10, 20, 30, 40])
    write_run(tmp_path, "onehot", 1, [6, 4, 3, 3], [7, 5, 2, 2], [10, 20, 30, 40])
    # faster: mean dev 4, 3, 2, 2 -> reaches 3 at check 2 (mean 24 s) -> 24 / 30 = 0.8.
    write_run(tmp_path, "faster", 0, [4, 3, 2, 2], [4, 3, 1, 1], [12, 24, 36, 48])
    write_run(tmp_path, "faster", 1, [4, 3, 2, 2], [5, 3, 2, 2], [12, 24, 36, 48])
    write_run(tmp_path, "faster", 2, [4, 3, 2, 2], [4, 4, 3, 3], [12, 24, 36, 48])
    # never: never reaches onehot's best dev error.
    write_run(tmp_path, "never", 0, [9, 8, 7, 7], [9, 8, 7, 7], [10, 20, 30, 40])
    return tmp_path


def test_statistics_by_hand(synthetic):
    runs = load_runs(synthetic)
    rows = {r["method"]: r for r in comparison_rows(runs)}
    assert list(rows) == ["onehot", "faster", "never"]  # the baseline first, then by name
    onehot, faster, never = rows["onehot"], rows["faster"], rows["never"]
    # selected = test error at the first check with the lowest dev error: onehot 4 and 2.
    assert onehot["selected_mean"] == pytest.approx(3.0)
    assert onehot["selected_std"] == pytest.approx(math.sqrt(2.0))  # sample std of {4, 2}
    assert (faster["selected_min"], faster["selected_max"]) == (1, 3)
    assert faster["final_mean"] == pytest.approx(2.0)
    assert onehot["time_fraction"] == pytest.approx(1.0)
    assert faster["time_fraction"] == pytest.approx(24 / 30)
    assert never["time_fraction"] is None
    # Welch's t-test by hand: t = (m1 - m2) / sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite dof.
    a, b = [1.0, 2.0, 3.0], [4.0, 2.0]
    va, vb = 1.0 / 3, 2.0 / 2
    t = (2.0 - 3.0) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    assert faster["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), dof), rel=1e-9)
    assert stats.ttest_ind(a, b, equal_var=False).pvalue == pytest.approx(faster["p_value"])
    assert never["p_value"] is None and onehot["p_value"] is None  # one seed; the baseline itself
    # AUAC: trapezoid over (0, 0), (1, .93), (2, .95), (3, .96), (4, .96), divided by 4 epochs.
    run = runs["onehot"][0]
    expected = (0.93 / 2 + (0.93 + 0.95) / 2 + (0.95 + 0.96) / 2 + 0.96) / 4
    assert auac(run) == pytest.approx(expected)


def test_tables_show_every_method_and_dash_when_never_reached(synthetic):
    rows = comparison_rows(load_runs(synthetic))
    markdown = format_markdown(rows)
    assert markdown.count("\n") == 2 + len(rows) - 1
    never_line = next(line for line in markdown.splitlines() if line.startswith("| never"))
    assert "| - |" in never_line
    csv_text = format_csv(rows)
    assert csv_text.splitlines()[0].startswith("method,seeds,selected_mean")
    assert len(csv_text.splitlines()) == 1 + len(rows)


def test_a_classification_table_keeps_its_columns(synthetic):
    header = format_markdown(comparison_rows(load_runs(synthetic))).splitlines()[0]
    assert header == (
        "| method | seeds | test error % (selected) | min | max | final test error % | s / epoch "
        "| time to onehot's best dev | test error % at onehot's compute | AUAC | p vs onehot (Welch) |"
    )


def test_the_table_says_where_runs_peaked_and_which_stopped_early(synthetic):
    # runs that record why they stopped: onehot seed 0 by early stopping, seed 1 at the ceiling
    for seed, reason in ((0, "early_stopping"), (1, "epochs")):
        path = synthetic / "onehot" / f"seed{seed}" / "summary.json"
        summary = json.loads(path.read_text())
        summary.update(selected_epoch=3.0 + seed, stopped={"reason": reason, "step": 4, "epoch": 4.0})
        path.write_text(json.dumps(summary))
    rows = {r["method"]: r for r in comparison_rows(load_runs(synthetic))}
    assert rows["onehot"]["selected_epoch"] == pytest.approx(3.5) and rows["onehot"]["stopped_early"] == 1
    assert rows["faster"]["selected_epoch"] is None  # written before runs recorded it
    markdown = format_markdown(list(rows.values()))
    header, *_ = markdown.splitlines()
    assert "| final test error % | best dev at epoch (stopped early) | s / epoch |" in header
    onehot_line = next(line for line in markdown.splitlines() if line.startswith("| onehot"))
    assert "| 3.5 (1/2) |" in onehot_line
    faster_line = next(line for line in markdown.splitlines() if line.startswith("| faster"))
    assert faster_line.count("|") == header.count("|") and "| - |" in faster_line
    assert "(k/n): the runs that early stopping ended" in markdown


def add_calibration(root: Path, method: str, seed: int, ece: float, nll: float) -> None:
    """Give a synthetic run the calibration a classification run records at its selected check."""
    path = root / method / f"seed{seed}" / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(selected_test_ece=ece, selected_test_nll=nll)
    path.write_text(json.dumps(summary))


def test_the_table_shows_calibration_with_welch_p_and_a_dash_for_runs_without_it(synthetic):
    add_calibration(synthetic, "onehot", 0, 4.0, 0.30)
    add_calibration(synthetic, "onehot", 1, 6.0, 0.34)
    for seed, (ece, nll) in enumerate([(1.0, 0.20), (2.0, 0.22), (3.0, 0.27)]):
        add_calibration(synthetic, "faster", seed, ece, nll)
    # "never" was recorded before runs had calibration: no keys at all.
    rows = {r["method"]: r for r in comparison_rows(load_runs(synthetic))}
    onehot, faster, never = rows["onehot"], rows["faster"], rows["never"]
    assert (onehot["ece_mean"], onehot["ece_std"]) == (pytest.approx(5.0), pytest.approx(math.sqrt(2.0)))
    assert (faster["nll_mean"], faster["nll_std"]) == (pytest.approx(0.23), pytest.approx(math.sqrt(0.0013)))
    # Welch by hand for ECE: faster {1, 2, 3} (var 1) against onehot {4, 6} (var 2).
    t = (2.0 - 5.0) / math.sqrt(1.0 / 3 + 2.0 / 2)
    dof = (1.0 / 3 + 1.0) ** 2 / ((1.0 / 3) ** 2 / 2 + 1.0**2 / 1)
    assert faster["ece_p_value"] == pytest.approx(2 * stats.t.sf(abs(t), dof), rel=1e-9)
    assert faster["nll_p_value"] == pytest.approx(
        stats.ttest_ind([0.20, 0.22, 0.27], [0.30, 0.34], equal_var=False).pvalue
    )
    assert onehot["ece_p_value"] is None  # the baseline itself
    assert never["ece_mean"] is None and never["nll_p_value"] is None
    markdown = format_markdown(list(rows.values()))
    header, _, *lines = markdown.splitlines()
    heads = [cell.strip() for cell in header.strip("|").split("|")]
    # Four columns end the table; the columns before them keep their places.
    assert heads[-5:] == [
        "p vs onehot (Welch)",
        "ECE % (selected)",
        "p ECE vs onehot",
        "NLL (selected)",
        "p NLL vs onehot",
    ]
    cells = {row[0]: row for row in ([c.strip() for c in line.strip("|").split("|")] for line in lines[:3])}
    assert cells["onehot"][-4:] == ["5.00 ± 1.41", "-", "0.320 ± 0.028", "-"]
    assert cells["faster"][-4:] == [
        "2.00 ± 1.00",
        f"{faster['ece_p_value']:.2g}",
        "0.230 ± 0.036",
        f"{faster['nll_p_value']:.2g}",
    ]
    assert cells["never"][-4:] == ["-", "-", "-", "-"] and len(cells["never"]) == len(heads)
    assert "ECE %: the expected calibration error of the test predictions" in markdown
    columns = format_csv(list(rows.values())).splitlines()[0].split(",")
    first = columns.index("ece_mean")  # after the columns of every table; the calibration table's follow
    assert columns[first : first + 6] == [
        "ece_mean",
        "ece_std",
        "ece_p_value",
        "nll_mean",
        "nll_std",
        "nll_p_value",
    ]
    assert columns[first - 1] == "stopped_early" and columns[-1] == "metric"


def test_welch_p_without_spread_warns_nothing_and_says_what_p_is():
    """Seeds with identical scores made scipy warn of "catastrophic cancellation" in every compare;
    without spread in either group p is 1 for equal scores and None for different ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's RuntimeWarning fails the test
        assert welch_p([2.5, 2.5], [2.5, 2.5, 2.5]) == 1.0
        assert welch_p([0.1, 0.1, 0.1], [0.1, 0.1]) == 1.0
        assert welch_p([2.5, 2.5], [2.2, 2.2]) is None
        # One group without spread: Welch's test with that group's variance 0, as by hand.
        t = (0.1 - 0.25) / math.sqrt(0.0 / 3 + 0.005 / 2)
        assert welch_p([0.1, 0.1, 0.1], [0.2, 0.3]) == pytest.approx(2 * stats.t.sf(abs(t), 1), rel=1e-9)
        p = welch_p([1.0, 2.0, 3.0], [4.0, 2.0])
    assert p == pytest.approx(stats.ttest_ind([1.0, 2.0, 3.0], [4.0, 2.0], equal_var=False).pvalue, rel=1e-12)
    assert welch_p([1.0], [1.0, 2.0]) is None  # one seed


def test_a_table_of_seeds_with_identical_scores_says_why_p_is_missing(tmp_path):
    # Every seed selects the same check with the same test error: onehot 4, same 4, better 2.
    for method, test in (("onehot", 4), ("same", 4), ("better", 2)):
        for seed in (0, 1):
            write_run(tmp_path, method, seed, [6, 3], [7, test], [10, 20])
            add_calibration(tmp_path, method, seed, 3.0, 0.3 if method == "better" else 0.25 + seed / 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = {r["method"]: r for r in comparison_rows(load_runs(tmp_path))}
        markdown = format_markdown(list(rows.values()))
    assert rows["same"]["p_value"] == 1.0 and rows["better"]["p_value"] is None
    assert rows["better"]["ece_p_value"] == 1.0 and rows["better"]["nll_p_value"] is not None
    header, _, *lines = [line.strip("|").split("|") for line in markdown.split("\n\n")[0].splitlines()]
    column = [cell.strip() for cell in header].index("p vs onehot (Welch)")
    p_cells = {line[0].strip(): line[column].strip() for line in lines}
    assert p_cells == {"onehot": "-", "better": "-", "same": "1"}
    assert "scores the same and so does every seed of onehot, a different value" in markdown
    # Seeds that vary (or a p that exists) need no such line.
    assert "scores the same" not in format_markdown([rows["onehot"], rows["same"]])


def write_text_run(root: Path, method: str, seed: int, score: str, dev: list[float], test: list[float]):
    """A finished run of a text task scored by ``score`` (bleu, rougeL), as the trainer writes it."""
    run_dir = root / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    records = [
        {"step": 10 * (i + 1), "epoch": float(i + 1), "train_seconds": 10.0 * (i + 1)}
        | {f"dev_{score}": d, f"test_{score}": t}
        for i, (d, t) in enumerate(zip(dev, test))
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    best = max(records, key=lambda r: (r[f"dev_{score}"], -r["step"]))
    summary = {
        "method": method,
        "seed": seed,
        "metric": f"test_{score}",
        "higher_is_better": True,
        "reported_metrics": [f"test_{score}"],
        f"selected_test_{score}": best[f"test_{score}"],
        f"final_test_{score}": records[-1][f"test_{score}"],
        "seconds_per_epoch": 10.0,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize(("score", "name"), [("bleu", "BLEU"), ("rougeL", "ROUGE-L")])
def test_a_text_table_speaks_of_its_score_on_its_0_to_100_scale(tmp_path, score, name):
    write_text_run(tmp_path, "onehot", 0, score, [8, 12, 14, 14], [10, 20, 30, 30])
    write_text_run(tmp_path, "label_embedding", 0, score, [12, 14, 15, 15], [20, 30, 32, 32])
    runs = load_runs(tmp_path)
    # AUAC of a score is on the score's own scale: trapezoid over (0, 0), (1, 10), (2, 20),
    # (3, 30), (4, 30) divided by 4 epochs = (5 + 15 + 25 + 30) / 4 (not 0.1875).
    assert auac(runs["onehot"][0], reported_metric(runs["onehot"][0].summary)) == pytest.approx(18.75)
    rows = comparison_rows(runs)
    markdown = format_markdown(rows)
    header, _, *lines = markdown.splitlines()
    heads = [cell.strip() for cell in header.strip("|").split("|")]
    assert heads == [
        "method",
        "seeds",
        f"test {name} (selected)",
        "min",
        "max",
        f"final test {name}",
        "s / epoch",
        f"time to onehot's best dev {name}",
        f"test {name} at onehot's compute",
        f"AUAC (test {name}, 0-100)",
        "p vs onehot (Welch)",
    ]
    cells = {row[0]: row for row in ([c.strip() for c in line.strip("|").split("|")] for line in lines[:2])}
    assert cells["onehot"][9] == "18.75"
    # (0 + 20) / 2 + (20 + 30) / 2 + (30 + 32) / 2 + 32 = 98 over 4 epochs.
    assert cells["label_embedding"][9] == "24.50"
    assert cells["onehot"][8] == "-"  # these synthetic runs were recorded without FLOPs
    # onehot's best dev (14) is reached at its 3rd check (30 s); label_embedding's 2nd (20 s).
    assert cells["label_embedding"][7] == f"{20 / 30:.2f}"
    assert f"{name}: 0-100, higher is better" in markdown and "error" not in markdown


def write_text_class_run(root: Path, method: str, seed: int, errors: list[float], f1s: list[float]):
    """A finished text-classification run: error and macro-F1 per check, selected by dev error."""
    run_dir = root / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    records = [
        {"step": i + 1, "epoch": float(i + 1), "train_seconds": 10.0 * (i + 1)}
        | {"dev_error": e, "dev_macro_f1": f, "test_error": e + 1, "test_macro_f1": f - 1}
        for i, (e, f) in enumerate(zip(errors, f1s))
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    best = min(records, key=lambda r: (r["dev_error"], r["step"]))
    summary = {
        "method": method,
        "seed": seed,
        "metric": "test_error",
        "higher_is_better": False,
        "reported_metrics": ["test_error", "test_macro_f1"],
        "seconds_per_epoch": 10.0,
    }
    for name in ("test_error", "test_macro_f1"):
        summary[f"selected_{name}"], summary[f"final_{name}"] = best[name], records[-1][name]
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_a_text_classification_table_shows_macro_f1_beside_the_error(tmp_path):
    write_text_class_run(tmp_path, "onehot", 0, [30, 20, 25], [40, 50, 60])
    write_text_class_run(tmp_path, "onehot", 1, [30, 22, 21], [40, 50, 70])
    write_text_class_run(tmp_path, "label_embedding", 0, [25, 18, 19], [45, 65, 66])
    runs = load_runs(tmp_path)
    assert reported_metric(runs["onehot"][0].summary).reported == (("test_macro_f1", "test macro-F1 %"),)
    rows = {r["method"]: r for r in comparison_rows(runs)}
    # Selected by dev error: onehot seed 0 at check 2 (F1 49), seed 1 at check 3 (F1 69).
    assert rows["onehot"]["test_macro_f1_mean"] == pytest.approx(59.0)
    assert rows["onehot"]["test_macro_f1_std"] == pytest.approx(math.sqrt(200.0))
    assert rows["onehot"]["selected_mean"] == pytest.approx(21.5)  # test errors 21 and 22
    markdown = format_markdown(list(rows.values()))
    header, _, *lines = markdown.splitlines()
    heads = [cell.strip() for cell in header.strip("|").split("|")]
    assert heads[:4] == ["method", "seeds", "test macro-F1 % (selected)", "test error % (selected)"]
    assert lines[0].startswith("| onehot | 2 | 59.00 ± 14.14 | 21.50 ± 0.71 |")
    assert "test macro-F1 %: 0-100, higher is better" in markdown
    assert "AUAC (test" not in header  # a classification table: AUAC of accuracy, 0-1
    page = render_report(
        title="t",
        made="m",
        setup="s",
        comparison_markdown=markdown,
        curves_png=b"\x89PNG\r\n\x1a\n",
        methods=[],
        wordnet_by_method={},
        wordnet_absent="none",
        metric=reported_metric(runs["onehot"][0].summary),
    )
    assert "Test macro-F1 (0-100, higher is better) is at the same check" in page
    assert '<th class="num">test macro-F1 % (selected)</th>' in page


def test_summarize_rebuilds_table_and_figure_without_training(synthetic, capsys):
    assert main(["compare", "--summarize", str(synthetic)]) == 0
    out = capsys.readouterr().out
    assert "| faster | 3 |" in out
    assert (synthetic / "comparison.md").read_text().startswith("| method")
    assert (synthetic / "comparison.csv").exists()
    assert (synthetic / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarize_of_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["compare", "--summarize", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


SMALL = {
    "experiment": "cmp",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2, "progress": False},
}


def test_an_interrupted_comparison_trains_only_what_is_missing(tmp_path, monkeypatch):
    configs = [
        build_config(SMALL, [f"output_dir={tmp_path}", f"method.name={m}", f"seed={s}"])
        for m in ("onehot", "label_embedding")
        for s in (0, 1)
    ]
    first = run_grid(configs, progress=False)
    (configs[3].run_dir() / "summary.json").unlink()
    trained = []
    import labelemb.sweep.grid as grid
    from labelemb.assembly import RunPlan

    def counting(real):
        def counting_train(run, **options):  # a config, or the grid's checked plan of one
            config = run.config if isinstance(run, RunPlan) else run
            if not (config.run_dir() / "summary.json").exists():
                trained.append((config.method.name, config.seed))
            return real(run, **options)

        return counting_train

    monkeypatch.setattr(grid, "train", counting(grid.train))
    second = run_grid(configs, progress=False)
    assert trained == [("label_embedding", 1)]
    assert [s["selected_test_error"] for s in second] == [s["selected_test_error"] for s in first]


def test_parallel_jobs_give_the_same_numbers_as_one_after_another(tmp_path):
    serial = [
        build_config(SMALL, [f"output_dir={tmp_path / 'a'}", "method.name=label_embedding", f"seed={s}"])
        for s in (0, 1)
    ]
    parallel = [c.model_copy(update={"output_dir": str(tmp_path / "b")}) for c in serial]
    one = run_grid(serial, jobs=1, progress=False)
    two = run_grid(parallel, jobs=2, progress=False)
    for a, b in zip(one, two):
        assert a["selected_test_error"] == b["selected_test_error"]
        assert a["final_test_error"] == b["final_test_error"]


def test_compare_command_end_to_end(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(SMALL))  # JSON is YAML
    code = main(
        [
            "compare",
            "--config",
            str(config),
            "--methods",
            "onehot,label_embedding",
            "--seeds",
            "0-1",
            "--output-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| onehot | 2 |" in out and "| label_embedding | 2 |" in out
    experiment = tmp_path / "runs" / "cmp"
    # Every classification run records the calibration of its test predictions; comparison.md
    # shows it (the terminal has a few columns of it: test_compare_prints_a_short_table).
    header, _, *lines = (experiment / "comparison.md").read_text().splitlines()
    heads = [cell.strip() for cell in header.strip("|").split("|")]
    assert heads[-4:] == ["ECE % (selected)", "p ECE vs onehot", "NLL (selected)", "p NLL vs onehot"]
    for line in lines[:2]:
        ece, _, nll, _ = [cell.strip() for cell in line.strip("|").split("|")][-4:]
        assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", ece) and re.fullmatch(r"\d+\.\d{3} ± \d+\.\d{3}", nll)
    terminal = [line for line in out.splitlines() if line.startswith("|")]
    assert len(terminal) == 4 and "NLL" not in out and "Calibration of the test predictions" not in out
    assert {p.name for p in experiment.iterdir()} >= {"comparison.md", "comparison.csv", "curves.png"}
    assert main(["compare", "--config", str(config), "--methods", "nope", "--output-dir", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
