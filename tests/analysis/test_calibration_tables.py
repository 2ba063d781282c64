"""The calibration table of `compare` (raw and temperature-scaled figures per method), its line on
whether scaling reorders the methods, the reliability diagrams raw and scaled side by side, and the
demo's ECE column; from summaries whose means and standard deviations are checked by hand."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from helpers.report_checks import drawn_reliability_figure

from labelemb.analysis.calibration_table import calibration_table, scaling_reorders
from labelemb.analysis.compare import Run, comparison_rows, load_runs
from labelemb.analysis.comparison_table import format_csv, format_markdown
from labelemb.analysis.tables import results_table
from labelemb.cli import main
from labelemb.metrics import measure_calibration
from labelemb.tasks.calibration import CALIBRATION_FIELDS

FIGURES = ("ece", "adaece", "classwise_ece", "nll", "brier")


def seed(
    temperature: float, *raw_scaled: tuple[float, float]
) -> tuple[float, dict[str, tuple[float, float]]]:
    """One seed's temperature and (raw, scaled) value of each of :data:`FIGURES`, in order."""
    return temperature, dict(zip(FIGURES, raw_scaled))


#: Two seeds of each method. label_embedding is underconfident raw (T < 1 sharpens it) and the
#: best calibrated once scaled.
SEEDS = {
    "onehot": [
        seed(1.2, (4.0, 1.0), (5.0, 2.0), (0.5, 0.4), (0.30, 0.28), (0.15, 0.14)),
        seed(1.4, (6.0, 2.0), (7.0, 3.0), (0.7, 0.6), (0.34, 0.30), (0.17, 0.16)),
    ],
    "label_embedding": [
        seed(0.5, (16.0, 0.5), (15.0, 1.0), (3.0, 0.3), (0.45, 0.27), (0.20, 0.13)),
        seed(0.7, (18.0, 1.5), (17.0, 2.0), (3.4, 0.5), (0.47, 0.29), (0.22, 0.15)),
    ],
}


def write_run(root: Path, method: str, seed: int, **summary: float | None) -> None:
    """A finished classification run whose summary holds ``summary`` beside the test error."""
    run_dir = root / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    record = {"step": 1, "epoch": 1.0, "train_seconds": 1.0, "dev_error": 5.0, "test_error": 6.0}
    (run_dir / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    base = {"method": method, "seed": seed, "selected_test_error": 6.0, "final_test_error": 6.0}
    (run_dir / "summary.json").write_text(json.dumps({**base, "seconds_per_epoch": 1.0, **summary}))


def recorded(temperature: float | None, figures: dict[str, tuple[float, float]]) -> dict[str, float | None]:
    """The summary keys a classification run records, as ``selected_<field>`` (None where a run
    without a dev split has no scaled figure)."""
    summary: dict[str, float | None] = {f"selected_{field}": None for field in CALIBRATION_FIELDS}
    for figure, (raw, scaled) in figures.items():
        summary[f"selected_test_{figure}"] = raw
        summary[f"selected_test_{figure}_scaled"] = None if temperature is None else scaled
    summary["selected_temperature"] = temperature
    return summary


@pytest.fixture
def scaled_runs(tmp_path: Path) -> Path:
    for method, seeds in SEEDS.items():
        for seed, (temperature, figures) in enumerate(seeds):
            write_run(tmp_path, method, seed, **recorded(temperature, figures))
    write_run(tmp_path, "old", 0)  # recorded before runs had any calibration
    return tmp_path


def table_cells(markdown: str) -> dict[str, list[str]]:
    """The rows of a Markdown table by their first cell, the header's under "method"."""
    lines = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith("| ---")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in rows}


HEAD = [
    "T",
    "ECE %",
    "ECE % scaled",
    "AdaECE %",
    "AdaECE % scaled",
    "classwise ECE %",
    "classwise ECE % scaled",
    "NLL",
    "NLL scaled",
    "Brier",
    "Brier scaled",
]


def test_the_calibration_table_gives_each_figure_raw_and_scaled_with_the_fitted_temperature(scaled_runs):
    table = calibration_table(comparison_rows(load_runs(scaled_runs)))
    assert table is not None and table.scaled
    cells = table_cells(table.markdown)
    assert list(cells) == ["method", "onehot", "label_embedding", "old"]  # the baseline first, then by name
    assert cells["method"] == HEAD
    # By hand: the mean of two seeds and their sample std |a - b| / sqrt(2).
    assert cells["onehot"] == [
        "1.30 ± 0.14",  # T {1.2, 1.4}
        "5.00 ± 1.41",  # ECE {4, 6}
        "1.50 ± 0.71",  # {1, 2}
        "6.00 ± 1.41",  # AdaECE {5, 7}
        "2.50 ± 0.71",  # {2, 3}
        "0.60 ± 0.14",  # classwise {0.5, 0.7}
        "0.50 ± 0.14",  # {0.4, 0.6}
        "0.320 ± 0.028",  # NLL {0.30, 0.34}
        "0.290 ± 0.014",  # {0.28, 0.30}
        "0.160 ± 0.014",  # Brier {0.15, 0.17}
        "0.150 ± 0.014",  # {0.14, 0.16}
    ]
    assert cells["label_embedding"] == [
        "0.60 ± 0.14",
        "17.00 ± 1.41",
        "1.00 ± 0.71",
        "16.00 ± 1.41",
        "1.50 ± 0.71",
        "3.20 ± 0.28",
        "0.40 ± 0.14",
        "0.460 ± 0.014",
        "0.280 ± 0.014",
        "0.210 ± 0.014",
        "0.140 ± 0.014",
    ]
    assert cells["old"] == ["-"] * len(HEAD)  # a run recorded before any of them
    assert "Brier: mean over examples of sum_k (p_k - [y = k])^2" in table.legend
    assert "T: the temperature each run fit on its dev split's logits" in table.legend


def test_the_ranking_line_says_which_methods_scaling_reorders_and_when_it_keeps_the_order(scaled_runs):
    rows = comparison_rows(load_runs(scaled_runs))
    # Raw: onehot 5.0 < label_embedding 17.0; scaled: label_embedding 1.0 < onehot 1.5.
    line = scaling_reorders(rows)
    assert calibration_table(rows).verdict == line
    assert line == (
        "Ranked by ECE (lowest first), scaling reorders the methods (onehot 1 -> 2, label_embedding 2 -> 1): "
        "raw onehot < label_embedding -> scaled label_embedding < onehot (old: not scaled, not ranked)."
    )
    by_method = {r["method"]: r for r in rows}
    by_method["label_embedding"]["ece_scaled_mean"] = 3.0  # now behind onehot's 1.5 after scaling too
    assert scaling_reorders(rows) == (
        "Scaling keeps the ECE order of the methods: onehot < label_embedding (old: not scaled, not ranked)."
    )
    assert scaling_reorders([by_method["onehot"], by_method["old"]]) is None  # nothing to rank against


def test_the_comparison_keeps_its_main_table_and_adds_the_calibration_table_after_it(scaled_runs):
    rows = comparison_rows(load_runs(scaled_runs))
    main_only = format_markdown(rows, calibration=False)
    markdown = format_markdown(rows)
    assert markdown.startswith(main_only + "\n\n")
    assert "ECE % scaled" not in main_only  # the main table as before: ECE and NLL with Welch p
    assert main_only.splitlines()[0].endswith(
        "| ECE % (selected) | p ECE vs onehot | NLL (selected) | p NLL vs onehot |"
    )
    table = calibration_table(rows)
    assert markdown.endswith(table.text())
    assert table.text().startswith("Calibration of the test predictions at the check each run selects")


def test_the_csv_has_the_calibration_columns_empty_for_runs_without_them(scaled_runs):
    rows = comparison_rows(load_runs(scaled_runs))
    read = list(csv.DictReader(io.StringIO(format_csv(rows))))
    by_method = {r["method"]: r for r in read}
    columns = list(read[0])
    for figure in FIGURES:
        for name in (figure, f"{figure}_scaled"):
            assert f"{name}_mean" in columns and f"{name}_std" in columns
    assert columns[-1] == "metric"
    assert float(by_method["onehot"]["temperature_mean"]) == pytest.approx(1.3)
    assert float(by_method["label_embedding"]["ece_scaled_mean"]) == pytest.approx(1.0)
    assert float(by_method["onehot"]["brier_scaled_std"]) == pytest.approx(0.02 / math.sqrt(2))
    assert by_method["old"]["adaece_scaled_mean"] == "" and by_method["old"]["temperature_mean"] == ""


def test_without_a_dev_split_the_table_is_raw_only_and_says_why(tmp_path):
    # What a CIFAR run records: every raw figure; the scaled ones and the temperature are null.
    for method, seeds in SEEDS.items():
        for seed, (_, figures) in enumerate(seeds):
            write_run(tmp_path, method, seed, **recorded(None, figures))
    rows = comparison_rows(load_runs(tmp_path))
    table = calibration_table(rows)
    assert table is not None and not table.scaled
    cells = table_cells(table.markdown)
    assert cells["method"] == ["ECE %", "AdaECE %", "classwise ECE %", "NLL", "Brier"]
    assert cells["onehot"] == ["5.00 ± 1.41", "6.00 ± 1.41", "0.60 ± 0.14", "0.320 ± 0.028", "0.160 ± 0.014"]
    assert table.verdict == (
        "Nothing was scaled: the data has no dev split, and a temperature is fit only on dev, never on "
        "the test split."
    )
    assert "T:" not in table.legend and "Ranked by ECE" not in format_markdown(rows)
    assert format_markdown(rows).endswith(table.verdict)


def test_runs_from_before_scaling_say_so_and_runs_from_before_calibration_have_no_table(tmp_path):
    for seed, ece in enumerate((4.0, 6.0)):  # runs that recorded only the ECE and NLL
        write_run(tmp_path, "onehot", seed, selected_test_ece=ece, selected_test_nll=0.3)
    table = calibration_table(comparison_rows(load_runs(tmp_path)))
    assert table is not None
    assert table_cells(table.markdown)["onehot"] == ["5.00 ± 1.41", "-", "-", "0.300 ± 0.000", "-"]
    assert table.verdict.startswith(
        "Nothing was scaled: the runs were recorded before runs fit a temperature"
    )
    older = tmp_path / "older"
    write_run(older, "onehot", 0)
    rows = comparison_rows(load_runs(older))
    assert calibration_table(rows) is None
    assert "Calibration of the test predictions" not in format_markdown(rows)


# ------------------------------------------------------------------ reliability, raw and scaled


def run_with_bins(method: str, seed: int, temperature: float | None) -> Run:
    import torch

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 3.0], [1.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 0])
    summary = {"selected_test_calibration": measure_calibration(logits, labels).reliability()}
    if temperature is not None:
        scaled = measure_calibration(logits / temperature, labels).reliability()
        summary.update(selected_test_calibration_scaled=scaled, selected_temperature=temperature)
    return Run(method, seed, summary, [])


def drawn_panels(
    monkeypatch: pytest.MonkeyPatch, runs: dict, tmp_path: Path
) -> list[tuple[str, float, float]]:
    """(title, left, bottom) of each diagram panel of the figure plot_reliability draws."""
    fig = drawn_reliability_figure(monkeypatch, runs, tmp_path / "reliability.png")
    return [(ax.get_title(), ax.get_position().x0, ax.get_position().y0) for ax in fig.axes if ax.get_title()]


def test_each_method_is_drawn_raw_and_scaled_side_by_side(monkeypatch, tmp_path):
    runs = {
        "onehot": [run_with_bins("onehot", 0, 1.5), run_with_bins("onehot", 1, 2.5)],
        "label_embedding": [run_with_bins("label_embedding", 0, 0.5)],
        "old": [run_with_bins("old", 0, None)],  # recorded before runs were scaled
    }
    panels = drawn_panels(monkeypatch, runs, tmp_path)
    titles = [title.splitlines()[0] for title, _, _ in panels]
    assert titles == [f"{m}, {kind}" for m in runs for kind in ("raw", "scaled")]
    by_title = {title.splitlines()[0]: (title, x, y) for title, x, y in panels}
    for method in runs:  # the scaled diagram right of the raw one, on the same row
        _, raw_x, raw_y = by_title[f"{method}, raw"]
        _, scaled_x, scaled_y = by_title[f"{method}, scaled"]
        assert scaled_x > raw_x and scaled_y == pytest.approx(raw_y)
    assert by_title["onehot, scaled"][0].endswith("mean T 2.00)")
    assert by_title["label_embedding, scaled"][0].endswith("(T 0.50)")
    assert by_title["old, raw"][0].startswith("old, raw\nECE ")
    assert by_title["old, scaled"][0] == "old, scaled"  # "not recorded" in the panel


def test_without_any_scaled_bins_each_method_has_one_diagram(monkeypatch, tmp_path):
    runs = {m: [run_with_bins(m, 0, None)] for m in ("onehot", "label_embedding")}
    titles = [title.splitlines()[0] for title, _, _ in drawn_panels(monkeypatch, runs, tmp_path)]
    assert titles == ["onehot", "label_embedding"]


# ------------------------------------------------------------------------------------ the demo


def test_the_demo_table_shows_the_ece_raw_and_scaled_within_100_columns(tmp_path, capsys, one_thread):
    summaries = []
    for method, seeds in SEEDS.items():
        for seed, (temperature, figures) in enumerate(seeds):
            base = {"method": method, "seed": seed, "seconds_per_epoch": 0.123456}
            base.update(selected_test_error=12.5 + 10 * seed, final_test_error=12.5 + 10 * seed)
            summaries.append({**base, **recorded(temperature, figures)})
    table = results_table(summaries, ece=True)
    cells = table_cells(table)
    assert cells["method"][-1] == "ECE % -> scaled"
    assert cells["onehot"][-1] == "5.00 -> 1.50" and cells["label_embedding"][-1] == "17.00 -> 1.00"
    assert max(len(line) for line in table.splitlines()) <= 100
    assert table_cells(results_table(summaries))["method"][-1] == "s / epoch"  # train's table as before

    out = tmp_path / "demo"
    assert main(["demo", "--seeds", "0-1", "--epochs", "1", "--output-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| ECE % -> scaled |" in printed
    assert (
        max(len(line) for line in printed.splitlines() if not line.startswith(("heatmap:", "runs:"))) <= 100
    )
    row = table_cells(printed.split("Knowing when it is wrong")[0])["label_embedding"]
    raw, scaled = (float(v) for v in row[-1].split(" -> "))
    assert 0 <= raw <= 100 and 0 <= scaled <= 100


# ------------------------------------------------------------------ post-hoc maps past temperature


def write_mapped(run_dir: Path, ece: dict[str, float]) -> None:
    """An evaluation.json holding each map's figures: ECE as given, the others fixed by hand."""
    test = {}
    for name, value in ece.items():
        test.update({f"recal_{name}_ece": value, f"recal_{name}_classwise_ece": value / 10})
        test.update({f"recal_{name}_nll": 0.25, f"recal_{name}_brier": 0.125})
    (run_dir / "evaluation.json").write_text(json.dumps({"format": 2, "test": test, "ood": {}}))


def test_the_maps_get_a_table_of_their_own_and_a_line_on_whether_each_reorders_the_methods(scaled_runs):
    # After temperature scaling label_embedding leads (ECE 1.0 < 1.5); after Dirichlet onehot does
    # (mean 1.0 < 2.0).
    write_mapped(scaled_runs / "onehot" / "seed0", {"dirichlet": 0.5, "isotonic": 4.0})
    write_mapped(scaled_runs / "onehot" / "seed1", {"dirichlet": 1.5, "isotonic": 6.0})
    for seed in (0, 1):
        write_mapped(scaled_runs / "label_embedding" / f"seed{seed}", {"dirichlet": 2.0})
    rows = comparison_rows(load_runs(scaled_runs))
    table = calibration_table(rows)
    assert table_cells(table.markdown)["method"] == HEAD  # the maps have a table of their own
    scaled = {m: table_cells(table.markdown)[m][HEAD.index("ECE % scaled")] for m in ("onehot", "old")}
    cells = table_cells(table.maps)
    ece, nll = ["ECE % Dirichlet", "ECE % isotonic"], ["NLL Dirichlet", "NLL isotonic"]
    assert cells["method"] == ["ECE % scaled", *ece, *nll]  # vector and binning: no run has them
    assert cells["onehot"] == [
        scaled["onehot"],  # beside the maps, to compare with
        "1.00 ± 0.71",  # Dirichlet {0.5, 1.5}
        "5.00 ± 1.41",  # isotonic {4, 6}
        "0.250 ± 0.000",
        "0.250 ± 0.000",
    ]
    assert cells["label_embedding"][1:] == ["2.00 ± 0.00", "-", "0.250 ± 0.000", "-"]  # without isotonic
    assert cells["old"][1:] == ["-"] * 4  # an old run folder, no evaluation.json
    assert "ECE % isotonic" in table.text() and table.text().index("ECE % scaled |") < table.text().index(
        "ECE % Dirichlet"
    )
    assert "Dirichlet calibration (a matrix on the log-probabilities" in table.maps_legend
    assert table.verdict.splitlines()[-1] == (
        "Ranked by ECE (lowest first), Dirichlet reorders the methods against temperature scaling "
        "(label_embedding 1 -> 2, onehot 2 -> 1): onehot < label_embedding; best after Dirichlet: onehot."
    )
    assert table.verdict.startswith(scaling_reorders(rows))
    read = {r["method"]: r for r in csv.DictReader(io.StringIO(format_csv(rows)))}
    assert float(read["onehot"]["ece_dirichlet_mean"]) == pytest.approx(1.0)
    assert read["old"]["ece_vector_mean"] == ""
