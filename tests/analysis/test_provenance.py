"""A comparison says which code trained its runs, and warns of runs that uncommitted code trained
(a ``.dirty`` build, wholly or in part): their numbers are no commit's."""

from __future__ import annotations

import json
from pathlib import Path

from labelemb.analysis.compare import Run
from labelemb.analysis.provenance import code_note, run_codes, uncommitted_runs
from labelemb.cli import main

CLEAN, OTHER, DIRTY = "0.1.0+g111111111111", "0.1.0+g222222222222", "0.1.0+g333333333333.dirty"


def run(seed: int, **summary) -> Run:
    return Run(method="m", seed=seed, summary=summary, records=[])


def test_each_part_of_a_run_has_its_code():
    assert run_codes({"labelemb": CLEAN}) == [CLEAN]
    resumed = {"labelemb": CLEAN, "trained_by": [{"labelemb": DIRTY, "from_step": 0}, {"labelemb": CLEAN}]}
    assert run_codes(resumed) == [DIRTY, CLEAN]
    assert run_codes({}) == [None]  # a run from before runs recorded their code


def test_the_note_counts_the_runs_each_code_trained_and_names_the_uncommitted_ones():
    runs = {
        "onehot": [run(0, labelemb=CLEAN), run(1, labelemb=CLEAN), run(2)],
        # Finished by CLEAN after DIRTY began it: CLEAN counts it once, DIRTY once.
        "ols": [run(0, labelemb=CLEAN, trained_by=[{"labelemb": DIRTY}, {"labelemb": CLEAN}])],
        "nls": [run(3, labelemb=OTHER, trained_by=[{"labelemb": OTHER}, {"labelemb": OTHER}])],
    }
    assert uncommitted_runs(runs) == ["ols seed 0"]
    note = code_note(runs)  # most runs first, then by name
    head = "The code that trained the runs (how many it trained, wholly or in part): labelemb "
    assert note.startswith(head + f"{CLEAN} (3), (not recorded) (1), {OTHER} (1), {DIRTY} (1).\n\n")
    assert "Warning: 1 run(s) were trained, wholly or in part, by uncommitted code" in note
    assert note.endswith(
        ": ols seed 0. Train them again from a commit (remove their folders and run the comparison again)."
    )
    clean = code_note({"onehot": [run(0, labelemb=CLEAN)]})
    assert clean == head + f"{CLEAN} (1)." and "Warning" not in clean
    assert code_note({}) == ""


def write_run(root: Path, method: str, seed: int, **code) -> None:
    folder = root / method / f"seed{seed}"
    folder.mkdir(parents=True)
    records = [{"step": 1, "epoch": 1.0, "train_seconds": 1.0, "dev_error": 5.0, "test_error": 6.0 + seed}]
    (folder / "metrics.jsonl").write_text(json.dumps(records[0]) + "\n")
    summary = {
        "method": method,
        "seed": seed,
        "selected_test_error": 6.0 + seed,
        "final_test_error": 6.0 + seed,
    }
    (folder / "summary.json").write_text(json.dumps({**summary, "seconds_per_epoch": 1.0, **code}))


def test_the_comparison_ends_with_the_code_and_the_terminal_shows_the_warning(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path, "onehot", seed, labelemb=CLEAN)
    write_run(tmp_path, "ols", 0, labelemb=CLEAN)
    write_run(
        tmp_path,
        "ols",
        1,
        labelemb=CLEAN,
        trained_by=[{"labelemb": DIRTY, "from_step": 0}, {"labelemb": CLEAN}],
    )
    assert main(["compare", "--summarize", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    table = (tmp_path / "comparison.md").read_text()
    assert table.rstrip().endswith("(remove their folders and run the comparison again).")
    assert f"labelemb {CLEAN} (4), {DIRTY} (1)." in table
    assert "Warning: 1 run(s) were trained, wholly or in part, by uncommitted code" in shown
    assert "ols seed 1" in shown
    # Trained again from a commit: the note names the code, and no warning is left.
    (tmp_path / "ols" / "seed1" / "summary.json").unlink()
    (tmp_path / "ols" / "seed1" / "metrics.jsonl").unlink()
    (tmp_path / "ols" / "seed1").rmdir()
    write_run(tmp_path, "ols", 1, labelemb=CLEAN)
    assert main(["compare", "--summarize", str(tmp_path)]) == 0
    assert "Warning" not in capsys.readouterr().out + (tmp_path / "comparison.md").read_text()
