"""The SCOD columns of a comparison's OOD table (labelemb.analysis.beyond_error): each method's
SCOD AURC and AUGRC of the MSP with Welch's p against onehot, and those of the score whose mean
SCOD AURC is lowest; from evaluation.json files written here, means and p checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import ttest_ind

from labelemb.analysis.beyond_error import beyond_error_tables
from labelemb.analysis.compare import comparison_rows, load_runs


def write_run(root: Path, method: str, seed: int, scod: dict[str, float] | None) -> None:
    """A finished run (its summary and metrics) and, unless ``scod`` is None, an evaluation.json whose
    'mnist' set holds its detection figures and the SCOD figures ``scod`` (fractions)."""
    run_dir = root / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    record = {"step": 1, "epoch": 1.0, "train_seconds": 1.0, "dev_error": 5.0, "test_error": 6.0}
    (run_dir / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    summary = {"method": method, "seed": seed, "selected_test_error": 6.0, "final_test_error": 6.0}
    (run_dir / "summary.json").write_text(json.dumps({**summary, "seconds_per_epoch": 1.0}))
    figures = {"ood_msp_auroc": 0.9, "ood_energy_auroc": 0.95, "ood_msp_fpr95": 0.3, "ood_energy_fpr95": 0.2}
    test = {"selective_msp_aurc": 0.02}
    ood = {"mnist": {"figures": {**figures, **(scod or {})}}}
    (run_dir / "evaluation.json").write_text(json.dumps({"format": 2, "test": test, "ood": ood}))


def scod(msp: float, energy: float) -> dict[str, float]:
    """SCOD AURC msp and energy; AUGRC half of each; max logit and entropy worse than both."""
    figures = {"scod_msp_aurc": msp, "scod_energy_aurc": energy, "scod_max_logit_aurc": 0.9}
    figures.update({"scod_entropy_aurc": 0.8, "scod_msp_augrc": msp / 2, "scod_energy_augrc": energy / 2})
    return {**figures, "scod_max_logit_augrc": 0.45, "scod_entropy_augrc": 0.4}


def table_rows(markdown: str, head: str) -> dict[str, list[str]]:
    table = markdown[markdown.index(head) :].split("\n\n")[1]
    lines = [line for line in table.splitlines() if not line.startswith("| ---")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_the_ood_table_gains_scod_with_welch_p_and_the_best_score(tmp_path):
    for seed, (msp, energy) in enumerate(((0.20, 0.10), (0.30, 0.12), (0.25, 0.14))):
        write_run(tmp_path, "onehot", seed, scod(msp, energy))
    for seed, (msp, energy) in enumerate(((0.10, 0.08), (0.12, 0.06), (0.14, 0.07))):
        write_run(tmp_path, "logitnorm", seed, scod(msp, energy))
    write_run(tmp_path, "old", 0, None)  # evaluated before SCOD
    rows = comparison_rows(load_runs(tmp_path))
    markdown = beyond_error_tables(rows, "onehot", ["mnist"])
    cells = table_rows(markdown, "Out-of-distribution inputs: mnist")
    assert cells["method"][5:] == [
        "SCOD AURC % MSP",
        "p vs onehot",
        "SCOD AUGRC % MSP",
        "SCOD AURC % energy",  # the lowest mean over the rows: energy
        "SCOD AUGRC % energy",
    ]
    want_p = ttest_ind([10.0, 12.0, 14.0], [20.0, 30.0, 25.0], equal_var=False).pvalue
    assert cells["logitnorm"][5:] == [
        "12.00 ± 2.00",
        f"{want_p:.2g}",
        "6.00 ± 1.00",
        "7.00 ± 1.00",
        "3.50 ± 0.50",
    ]
    assert cells["onehot"][5:] == ["25.00 ± 5.00", "-", "12.50 ± 2.50", "12.00 ± 2.00", "6.00 ± 1.00"]
    assert cells["old"][5:] == ["-"] * 5
    assert "an accepted OOD input counting as an error" in markdown
    assert not math.isnan(want_p) and want_p < 0.05
    by_method = {r["method"]: r for r in rows}
    assert by_method["logitnorm"]["ood_mnist_scod_msp_aurc_p_value"] == pytest.approx(want_p)
