"""What `labelemb compare` prints (issue 79): a few columns per method and where the rest is, while
comparison.md and comparison.csv keep every table."""

from __future__ import annotations

import csv
import json
import shutil

from helpers.report_checks import markdown_rows

from labelemb.analysis.compare import comparison_rows, load_runs
from labelemb.analysis.comparison_table import format_short
from labelemb.analysis.tables import noisy_labels_note
from labelemb.cli import main
from labelemb.tasks.seq2seq import BLEU

#: The widest line of the terminal's table: it fits a terminal beside a prompt.
TERMINAL_WIDTH = 110


def test_compare_prints_a_short_table_and_where_the_full_tables_are(experiment, capsys):
    """Before, compare (and compare --summarize) printed comparison.md whole: some 60 lines, its
    first table of 16 columns, for 2 methods x 2 seeds. Now one row per method of at most 7
    columns, the numbers those of comparison.csv, then one line naming the files and the report."""
    full = (experiment / "comparison.md").read_text(encoding="utf-8")
    assert main(["compare", "--summarize", str(experiment)]) == 0
    out = capsys.readouterr().out
    assert (experiment / "comparison.md").read_text(encoding="utf-8") == full  # every table kept
    head, _, *rows = markdown_rows(out)
    assert head == [
        "method",
        "seeds",
        "test error % (selected)",
        "p vs onehot",
        "ECE % -> scaled",
        "AURC %",
        "patches AUROC % (MSP)",
    ]
    assert all(len(line) <= TERMINAL_WIDTH for line in out.splitlines() if line.startswith("|"))
    with open(experiment / "comparison.csv", encoding="utf-8") as file:
        recorded = {row["method"]: row for row in csv.DictReader(file)}
    assert [row[0] for row in rows] == ["onehot", "label_embedding"]
    for method, seeds, error, p, ece, aurc, auroc in rows:
        r = {
            k: float(v) for k, v in recorded[method].items() if k.endswith(("_mean", "_std", "p_value")) and v
        }
        assert seeds == "2" and error == f"{r['selected_mean']:.2f} ± {r['selected_std']:.2f}"
        assert p == ("-" if method == "onehot" else f"{r['p_value']:.2g}")
        assert ece == f"{r['ece_mean']:.2f} -> {r['ece_scaled_mean']:.2f}"
        assert aurc == f"{r['beyond_aurc_mean']:.2f} ± {r['beyond_aurc_std']:.2f}"
        assert auroc == f"{r['ood_patches_msp_auroc_mean']:.2f} ± {r['ood_patches_msp_auroc_std']:.2f}"
    # The last line, but for the warning a checkout with uncommitted changes adds to its own runs.
    lines = [line for line in out.splitlines() if not line.startswith("Warning: ")]
    assert lines[-1] == (
        f"full tables: {experiment / 'comparison.md'} (and comparison.csv, curves.png, ranks.png); "
        f"one page: labelemb report {experiment}"
    )
    assert len(lines) == 2 + len(rows) + 2  # the table, a blank line, where the rest is


def _noise(train: float, dev: float | None, kept_clean: bool = False) -> dict:
    """A run's record of its noisy labels, as its summary's ``data.noise`` holds it."""
    rates = {"train": train} if dev is None else {"train": train, "dev": dev}
    return {
        "kind": "symmetric",
        "rate": 0.4,
        "dev": "clean" if kept_clean else "noisy",
        "realised_rate": rates,
    }


def test_a_noisy_comparison_s_terminal_table_says_its_runs_trained_and_scaled_on_noisy_labels(
    experiment, tmp_path, capsys
):
    """Issue 99: the table of a comparison trained on noisy labels showed "ECE % -> scaled 43.79 ->
    44.94" with no word that the runs trained on noisy labels and fit the temperature on a noisy dev.
    A line under the table now says so (and a comparison on right labels has none: the test above)."""
    noisy = tmp_path / "noisy"
    shutil.copytree(experiment, noisy)
    for i, path in enumerate(sorted(noisy.glob("*/seed*/summary.json"))):
        summary = json.loads(path.read_text())
        summary["data"] = {**summary.get("data", {}), "noise": _noise(40.0 + i, 39.0 + i)}
        path.write_text(json.dumps(summary))
    assert main(["compare", "--summarize", str(noisy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(lines) if not line.startswith("|"))
    below = lines[first : lines.index("", first)]  # the lines under the table, to the blank one
    assert all(len(line) <= TERMINAL_WIDTH for line in below)
    assert " ".join(below) == (
        "The runs trained on noisy labels (41.5 % of training labels wrong; the test labels are right); "
        "ECE % -> scaled: the temperature was fit on their noisy dev split (40.5 % wrong)."
    )


def test_the_noisy_labels_note_says_where_the_temperature_was_fit():
    scaled = {"selected_test_ece": 40.0, "selected_test_ece_scaled": 41.0}
    assert noisy_labels_note([scaled, {**scaled, "data": {"name": "digits"}}]) == ""
    kept = [{**scaled, "data": {"noise": _noise(20.0, None, kept_clean=True)}}] * 2
    assert " ".join(noisy_labels_note(kept).splitlines()).endswith(
        "fit on their dev split, whose labels were not made noisy."
    )
    unscaled = [{"selected_test_ece": 40.0, "data": {"noise": _noise(20.0, None)}}]
    assert noisy_labels_note(unscaled) == (
        "The runs trained on noisy labels (20.0 % of training labels wrong; the test labels are right)."
    )
    mixed = [kept[0], {**scaled, "data": {"noise": _noise(30.0, 30.0)}}, scaled]
    said = " ".join(noisy_labels_note(mixed).splitlines())
    assert said.startswith("2 of 3 runs trained on noisy labels (25.0 % ")
    assert said.endswith("fit on their dev split, noisy in 1 of 2 runs.")


def test_a_text_task_s_short_table_has_its_score_alone(tmp_path):
    """A sequence-to-sequence comparison heads its score (BLEU, higher is better) as its rows name
    it, and has no calibration, AURC or OOD column: its runs have none."""
    for method in ("onehot", "label_embedding"):
        for seed in (0, 1):
            _write_text_run(tmp_path, method, seed, bleu=20.0 + seed + (method == "onehot"))
    rows = comparison_rows(load_runs(tmp_path))
    head, _, *cells = markdown_rows(format_short(rows, scoring=BLEU))
    assert head == ["method", "seeds", "test BLEU (selected)", "p vs onehot"]
    assert cells[0][:3] == ["onehot", "2", "21.50 ± 0.71"] and cells[1][3] == "0.29"
    # Without onehot among the methods there is no p to give, and no column for it.
    alone = [r for r in rows if r["method"] != "onehot"]
    assert markdown_rows(format_short(alone, scoring=BLEU))[0] == ["method", "seeds", "test BLEU (selected)"]


def _write_text_run(root, method: str, seed: int, bleu: float) -> None:
    import json

    run = root / method / f"seed{seed}"
    run.mkdir(parents=True)
    records = [
        {"step": 1, "epoch": 1.0, "train_seconds": 1.0, "dev_bleu": bleu - 1, "test_bleu": bleu - 1},
        {"step": 2, "epoch": 2.0, "train_seconds": 2.0, "dev_bleu": bleu, "test_bleu": bleu},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {
        "method": method,
        "seed": seed,
        "metric": "test_bleu",
        "scoring": BLEU.record(),
        "selected_test_bleu": bleu,
        "final_test_bleu": bleu,
        "seconds_per_epoch": 1.0,
    }
    (run / "summary.json").write_text(json.dumps(summary))
