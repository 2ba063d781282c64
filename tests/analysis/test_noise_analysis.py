"""What a comparison of runs trained on noisy labels shows: the table of the wrong labels, the
disputed test labels, the memorisation curves, and how a learned label similarity compares with the
noise's transition matrix; each figure by hand, then all of them on a real small comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from labelemb.analysis.analyze import analyze
from labelemb.analysis.compare import welch_p
from labelemb.analysis.noise_similarity import noise_matrices, off_diagonal_correlation
from labelemb.analysis.noise_table import disputed_block, noise_block, noise_statistics
from labelemb.cli import main
from labelemb.rundir import NOISE_FILE, save_safetensors


def test_off_diagonal_correlation_reads_the_off_diagonal_cells_only():
    truth = np.array([[0.6, 0.3, 0.1], [0.05, 0.6, 0.35], [0.25, 0.15, 0.6]])
    # The same off-diagonal order, another diagonal and scale: Spearman 1; Pearson of the 6 cells.
    learned = np.array([[0.9, 0.06, 0.02], [0.01, 0.9, 0.07], [0.05, 0.03, 0.9]])
    found = off_diagonal_correlation(learned, truth)
    off = ~np.eye(3, dtype=bool)
    assert found["spearman"] == pytest.approx(1.0)
    assert found["pearson"] == pytest.approx(np.corrcoef(learned[off], truth[off])[0, 1])
    # Symmetric noise: every off-diagonal cell alike, nothing to correlate.
    flat = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    assert all(math.isnan(v) for v in off_diagonal_correlation(learned, flat).values())


def test_noise_matrices_are_the_shares_of_the_recorded_labels(tmp_path):
    clean = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2], dtype=torch.int32)
    noisy = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0], dtype=torch.int32)
    save_safetensors(
        tmp_path / NOISE_FILE, {"train_clean": clean, "train_noisy": noisy, "realised": torch.zeros(3, 3)}
    )
    matrices = noise_matrices(tmp_path)
    assert np.allclose(matrices["transition"], [[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]])
    # Labelled 0: true 0, 0, 2; labelled 1: 0, 0, 1; labelled 2: 1, 2.
    assert np.allclose(matrices["reverse"], [[2 / 3, 0, 1 / 3], [2 / 3, 1 / 3, 0], [0, 0.5, 0.5]])
    assert noise_matrices(tmp_path / "elsewhere") is None


def evaluation(memorised: float, auroc: float, within_5: float) -> dict:
    figures = {"memorised": memorised, "flipped_correct": 100 - memorised, "detect_auroc_loss": auroc}
    return {
        "noise": {"realised_rate": 40.0, "selected": figures, "final": figures},
        "disputed": {"within_5": within_5, "median_rank": 10.0, "auroc": 80.0 + within_5 / 10},
    }


def test_noise_statistics_and_tables_by_hand():
    base = [evaluation(30, 80, 20), evaluation(34, 82, 24)]
    other = [evaluation(10, 90, 40), evaluation(14, 94, 44)]
    row = noise_statistics(other, base, welch_p)
    assert row["noise_rate_mean"] == 40.0
    assert row["noise_selected_memorised_mean"] == pytest.approx(12.0)
    assert row["noise_selected_memorised_std"] == pytest.approx(math.sqrt(8))
    assert row["noise_selected_memorised_p_value"] == pytest.approx(welch_p([10, 14], [30, 34]))
    assert row["noise_final_detect_auroc_loss_mean"] == pytest.approx(92.0)
    assert row["disputed_within_5_mean"] == pytest.approx(42.0)
    assert row["disputed_within_5_p_value"] == pytest.approx(welch_p([40, 44], [20, 24]))
    # No p for the baseline itself, none for a figure the table gives without one.
    assert noise_statistics(base, None, welch_p)["noise_selected_memorised_p_value"] is None
    assert row["noise_selected_flipped_correct_p_value"] is None
    # Runs on right labels carry no noise keys at all.
    assert noise_statistics([{"test": {}}, None], None, welch_p) == {}
    rows = [
        {
            "method": "onehot",
            "selected_mean": 20.0,
            "selected_std": 1.0,
            "final_mean": 25.0,
            "final_std": 1.0,
            **noise_statistics(base, None, welch_p),
        },
        {
            "method": "gce",
            "selected_mean": 15.0,
            "selected_std": 1.0,
            "final_mean": 16.0,
            "final_std": 1.0,
            **row,
        },
    ]
    rows[1].update(
        beyond_aps_coverage_mean=88.5,
        beyond_aps_coverage_std=0.5,
        beyond_aps_size_mean=7.2,
        beyond_aps_size_std=0.1,
    )
    table = noise_block(rows, "onehot").text()
    assert "| 88.50 ± 0.50 | 7.20 ± 0.10 |" in table
    assert "(40.00 % of the training labels wrong)" in table
    assert "| gce | 15.00 ± 1.00 | 16.00 ± 1.00 | 12.00 ± 2.83 |" in table
    assert "| onehot | 20.00 ± 1.00 | 25.00 ± 1.00 | 32.00 ± 2.83 | - |" in table
    assert "| gce | 15.00 ± 1.00 | 42.00 ± 2.83 |" in disputed_block(rows, "onehot").text()
    clean = [{"method": "onehot", "selected_mean": 1.0, "selected_std": 0.0}]
    assert noise_block(clean, "onehot") is None and disputed_block(clean, "onehot") is None


@pytest.fixture(scope="module")
def noisy_experiment(tmp_path_factory):
    """2 methods x 2 seeds on digits trained on pair-flip labels, with disputed test rows named."""
    root = tmp_path_factory.mktemp("noisy")
    (root / "disputed.txt").write_text("\n".join(str(i) for i in range(0, 300, 10)))
    config = {
        "experiment": "noisy",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 2},
        "noise": {"kind": "pairflip", "rate": 0.3},
        "disputed_test_labels": str(root / "disputed.txt"),
    }
    (root / "noisy.yaml").write_text(yaml.safe_dump(config))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = [
            "--methods",
            "onehot,label_embedding",
            "--seeds",
            "0-1",
            "--output-dir",
            str(root),
            "--no-progress",
        ]
        assert main(["compare", "--config", str(root / "noisy.yaml"), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "noisy"


def test_a_noisy_comparison_has_its_tables_and_memorisation_curves(noisy_experiment):
    table = (noisy_experiment / "comparison.md").read_text()
    assert "Trained on noisy labels (" in table and "The disputed test labels" in table
    assert (noisy_experiment / "memorisation.png").read_bytes().startswith(b"\x89PNG")
    evaluation_record = json.loads((noisy_experiment / "onehot/seed0/evaluation.json").read_text())
    assert evaluation_record["disputed"]["count"] == 30


def test_analyze_compares_the_learned_similarity_with_the_noise(noisy_experiment, tmp_path):
    runs = sorted(noisy_experiment.glob("*/seed*"))
    summary = analyze(runs, tmp_path)
    for result in summary["runs"]:
        assert set(result["noise"]) == {"transition", "reverse"}
        assert (tmp_path / f"{result['method']}-seed{result['seed']}" / "noise.png").is_file()
    assert set(summary["noise_by_method"]) == {"onehot", "label_embedding"}
    assert "Learned similarity against the label noise" in (tmp_path / "analysis.md").read_text()


def test_the_report_of_a_noisy_comparison_has_a_noisy_labels_section(noisy_experiment, tmp_path):
    from labelemb.analysis.report import build_report

    page = build_report(noisy_experiment, tmp_path / "report.html", analyze_runs=False).read_text()
    assert '<a href="#noisy-labels">noisy labels</a>' in page and '<section id="noisy-labels">' in page
    assert "The disputed test labels" in page and "Memorisation while training" in page


def setting(name: str, rate: float, errors: dict[str, list[float]]):
    from labelemb.analysis.compare import Run
    from labelemb.analysis.noise_sweep import NoiseSetting

    runs = {
        method: [Run(method, seed, {"selected_test_error": e}, []) for seed, e in enumerate(values)]
        for method, values in errors.items()
    }
    return NoiseSetting(name, rate, runs)


def test_the_rank_table_and_the_picture_across_noise_settings_by_hand(tmp_path):
    from labelemb.analysis.noise_sweep import plot_error_against_noise, rank_table, welch_between

    low = setting("low", 20.0, {"onehot": [10, 12], "gce": [9, 9], "nls": [11, 13]})
    high = setting("high", 50.0, {"onehot": [30, 34], "gce": [40, 44], "nls": [20, 22]})
    table = rank_table([low, high])
    lines = table.splitlines()
    assert lines[0] == "| method | low (20.0 % wrong) | high (50.0 % wrong) | mean rank |"
    # Mean ranks: gce (1 + 3) / 2 = 2.0, nls (3 + 1) / 2 = 2.0, onehot (2 + 2) / 2 = 2.0: by name.
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| gce", "| nls", "| onehot"]
    assert "| nls | 12.00 ± 1.41 (3) | 21.00 ± 1.41 (1) | 2.0 |" in table
    mine, theirs, p = welch_between(high, "nls", "onehot")
    assert (mine, theirs) == (21.0, 32.0) and p == pytest.approx(welch_p([20, 22], [30, 34]))
    with pytest.raises(ValueError, match="high has no runs of coteaching"):
        welch_between(high, "coteaching", "onehot")
    assert plot_error_against_noise([high, low], tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")


def test_tied_means_share_the_better_rank_across_noise_settings():
    from labelemb.analysis.noise_sweep import rank_table

    # acls selects onehot's very weights (the same errors): both rank 1, gce after them ranks 3.
    tied = setting("tied", 60.0, {"onehot": [16, 17], "acls": [17, 16], "gce": [18, 19]})
    rows = rank_table([tied]).splitlines()[2:]
    assert rows == [
        "| acls | 16.50 ± 0.71 (1) | 1.0 |",
        "| onehot | 16.50 ± 0.71 (1) | 1.0 |",
        "| gce | 18.50 ± 0.71 (3) | 3.0 |",
    ]


def test_the_welch_table_marks_each_method_s_direction_and_p_against_onehot_by_hand():
    from labelemb.analysis.noise_sweep import welch_table

    low = setting("low", 20.0, {"onehot": [10, 12], "gce": [9, 9.5], "nls": [11, 13]})
    high = setting("high", 50.0, {"onehot": [30, 34, 32], "gce": [40, 44, 42], "nls": [20, 22, 21]})
    lines = welch_table([low, high]).splitlines()
    assert lines[:2] == ["| method | low | high |", "| --- | ---: | ---: |"]
    gce_low = f"↓ {welch_p([9, 9.5], [10, 12]):.2g}"
    gce_high = f"↑ {welch_p([40, 44, 42], [30, 34, 32]):.2g}"
    nls_low = f"↑ {welch_p([11, 13], [10, 12]):.2g}"
    nls_high = f"↓ {welch_p([20, 22, 21], [30, 34, 32]):.2g}"
    # nls is lower than onehot with p < 0.05 in one setting, gce in none: nls first.
    assert welch_p([20, 22, 21], [30, 34, 32]) < 0.05 < welch_p([9, 9.5], [10, 12])
    assert lines[2:] == [f"| nls | {nls_low} | {nls_high} |", f"| gce | {gce_low} | {gce_high} |"]
    alone = setting("alone", 0.0, {"gce": [1, 2]})  # no onehot there: no p
    assert welch_table([low, alone]).splitlines()[2] == f"| gce | {gce_low} | - |"
    # A method whose selected figures are onehot's own (the same seeds' errors): neither arrow.
    same = setting("same", 30.0, {"onehot": [10, 12], "acls": [12, 10]})
    assert welch_table([same]).splitlines()[2] == f"| acls | = {welch_p([12, 10], [10, 12]):.2g} |"


def test_read_settings_takes_the_rate_the_runs_record(noisy_experiment, experiment):
    from labelemb.analysis.noise_sweep import read_settings

    found, clean = read_settings({"pairflip30": noisy_experiment, "clean": experiment})
    assert found.name == "pairflip30" and found.rate == pytest.approx(30, abs=8)
    assert set(found.runs) == {"onehot", "label_embedding"} and len(found.errors("onehot")) == 2
    assert clean.rate == 0.0 and len(clean.errors("onehot")) == 2  # right labels: the sweep's start
