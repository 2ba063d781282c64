"""What runs after training shows itself: the evaluation (test and dev splits, conformal sets, each
OOD set) and the scoring under shift count their steps, as a bar on a terminal and as a few lines
(start, quarters, end with the time taken) off one."""

from __future__ import annotations

import re
import sys
import time

import pytest

from labelemb.cli import main
from labelemb.progress import Steps

pytestmark = pytest.mark.usefixtures("one_thread")


def test_off_a_terminal_steps_are_a_line_at_start_each_quarter_and_end(capsys):
    with Steps("evaluating", 8, "part", bar=True, detail=" for 2 run(s)") as steps:
        for _ in range(8):
            steps.step("test split")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "evaluating: 8 part(s) for 2 run(s)"
    assert [line.split(",")[0] for line in lines[1:4]] == [f"evaluating: {n}/8 part(s)" for n in (2, 4, 6)]
    assert re.fullmatch(r"evaluating: 8 part\(s\) in \d+\.\d s", lines[4])
    assert len(lines) == 5


def test_steps_done_at_once_cross_their_quarters_in_one_line_and_none_shows_nothing(capsys):
    with Steps("shift", 40, "condition", bar=False) as steps:
        steps.advance(40)  # every condition read back
    assert len(capsys.readouterr().err.splitlines()) == 2  # its start and its end
    with Steps("shift", 40, "condition", bar=False, lines=False) as steps:
        steps.advance(40)
    assert capsys.readouterr().err == ""


def test_on_a_terminal_a_bar_counts_the_steps_and_a_line_says_how_long(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with Steps("scoring under shift", 4, "condition", bar=True) as steps:
        for name in ("fog@1", "fog@2", "blur@1", "blur@2"):
            time.sleep(0.15)  # past tqdm's least interval between redraws (0.1 s)
            steps.step(name)
    err = capsys.readouterr().err
    assert "\r" in err and "1/4" in err and "fog@1" in err  # the bar, redrawn in place
    assert re.search(r"scoring under shift: 4 condition\(s\) in \d+\.\d s\n$", err)


def test_train_shows_its_evaluation_and_shift_off_a_terminal_even_without_progress(tmp_path, capsys):
    args = ["train", "--output-dir", str(tmp_path), "--seeds", "0,1", "model.hidden=[16]", "train.epochs=1"]
    code = main([*args, "experiment=exp", "ood=[{data: patches}]", "shift=[severities]", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    evaluation = [line for line in err.splitlines() if line.startswith("evaluating the selected weights:")]
    assert evaluation[0].startswith("evaluating the selected weights: 8 part(s) for 2 run(s): test and dev")
    assert evaluation[0].endswith("conformal sets, OOD patches")
    assert re.fullmatch(r"evaluating the selected weights: 8 part\(s\) in \d+\.\d s", evaluation[-1])
    shift = [line for line in err.splitlines() if line.startswith("scoring under shift:")]
    # severities: four scales at five severities each, for each of the 2 runs.
    assert shift[0].startswith("scoring under shift: 40 condition(s) (severities) for 2 run(s)")
    assert re.fullmatch(r"scoring under shift: 40 condition\(s\) in \d+\.\d s", shift[-1])
    assert len(evaluation) <= 5 and len(shift) <= 5
