"""`labelemb tune`'s promises that a new user and a reviewer found broken (issue 44): a damaged
journal, concurrent drivers and the budget, studies checked before anything trains, searched
options that change nothing, the default setting as a trial, and rounded console numbers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest

from labelemb.analysis.tuning import read_tuning
from labelemb.cli import main
from labelemb.experiment import base_config
from labelemb.tuning import JOURNAL_FILE, Tuner, TuneSetting, open_storage

#: Digits, 2 epochs, 2 checks an epoch: a trial is a second or two.
QUICK = ["train.epochs=2", "train.eval_every=600", "--no-progress"]

#: The experiment of tune without --config: the demo's own setting.
EXPERIMENT = "demo-digits-mlp"


def tune(tmp_path, *extra, methods="label_smoothing", trials=2, seeds="1"):
    args = ["tune", "--methods", methods, "--trials", str(trials), "--seeds", seeds]
    return main([*args, "--output-dir", str(tmp_path), *QUICK, *extra])


def journal_of(tmp_path: Path) -> Path:
    return tmp_path / EXPERIMENT / "tuning" / JOURNAL_FILE


def trials_of(tmp_path, method, experiment=EXPERIMENT):
    storage = open_storage(str(tmp_path / experiment / "tuning" / JOURNAL_FILE))
    return optuna.load_study(study_name=f"{experiment}:{method}", storage=storage).get_trials()


def table_of(tmp_path) -> str:
    return (tmp_path / EXPERIMENT / "tuning.md").read_text()


# ---------------------------------------------------------------------------- a damaged journal


@pytest.mark.parametrize("damage", ["garbage", "cut"])
def test_a_damaged_journal_is_one_line_naming_it_and_is_never_written(tmp_path, capsys, damage):
    assert tune(tmp_path, trials=1) == 0
    journal = journal_of(tmp_path)
    lines = journal.read_bytes().splitlines(keepends=True)
    if damage == "garbage":
        lines[2] = b"}{ this is no record\n"
        expected = "line 3 is not a JSON record"
    else:
        # A write cut short: half the last record, no newline (what Optuna reads past and then
        # appends to, gluing its next record onto the broken one).
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
        expected = f"the last record (line {len(lines)}) is cut short"
    journal.write_bytes(b"".join(lines))
    damaged = journal.read_bytes()
    capsys.readouterr()
    code = tune(tmp_path, trials=3)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(journal.resolve()) in err and expected in err
    assert "move the journal aside" in err
    assert journal.read_bytes() == damaged
    assert not list((tmp_path / EXPERIMENT / "tuning").glob("trial001"))


# ---------------------------------------------------------------------------- one budget, many drivers


class _MeetingExecutor:
    """Trains nothing: a unit's dev error is made up from its values. A driver's rounds wait (up to
    a second) for the other driver's, so both ask their trials before either tells one."""

    def __init__(self, meeting: threading.Barrier, trained: list[int]) -> None:
        self.meeting = meeting
        self.trained = trained

    def run(self, units, finished):
        try:
            self.meeting.wait(timeout=1)
        except threading.BrokenBarrierError:
            pass  # the other driver has no round to meet
        for i, unit in enumerate(units):
            self.trained.append(1)
            epsilon = unit.plans[0].method.options.get("epsilon", 0.1)
            finished(i, [{"method": "label_smoothing", "seed": 0, "selected_dev_error": 10 + 10 * epsilon}])


def test_two_drivers_at_once_keep_to_the_budget(tmp_path, monkeypatch):
    """Before: each driver counted the finished trials only, so both asked the last one (4 of 3)."""
    import labelemb.tuning.study as tuning

    monkeypatch.setattr(tuning, "WAIT_SECONDS", 0.05)
    base = base_config(None, ["train.epochs=1", f"output_dir={tmp_path}"])
    trained: list[int] = []
    meeting = threading.Barrier(2)
    errors: list[BaseException] = []

    def driver() -> None:
        try:
            setting = TuneSetting(base, ["label_smoothing"], trials=3)
            Tuner(setting, _MeetingExecutor(meeting, trained), slots=1).tune("label_smoothing")
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            errors.append(error)

    drivers = [threading.Thread(target=driver) for _ in range(2)]
    for thread in drivers:
        thread.start()
    for thread in drivers:
        thread.join(timeout=60)
    assert not errors, errors
    states = [t.state.name for t in trials_of(tmp_path, "label_smoothing")]
    assert states.count("COMPLETE") == 3, states
    assert len(trained) == 3  # a trial over the budget is closed before it trains
    assert set(states) <= {"COMPLETE", "FAIL"}


def test_two_tune_commands_at_once_keep_to_the_budget(tmp_path):
    """The issue's case: two `labelemb tune` processes on one experiment, --trials 3 each."""
    command = [sys.executable, "-m", "labelemb", "tune", "--methods", "label_smoothing", "--trials", "3"]
    command += ["--seeds", "1", "--output-dir", str(tmp_path), *QUICK]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    drivers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
    drivers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = [driver.communicate(timeout=300) for driver in drivers]
    for driver, (_, err) in zip(drivers, outputs):
        assert driver.returncode == 0, err.decode()
    states = [t.state.name for t in trials_of(tmp_path, "label_smoothing")]
    assert states.count("COMPLETE") == 3, states
    record = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]
    assert sum(t["state"] == "COMPLETE" for t in record["trials"]) == 3


# ---------------------------------------------------------------------------- every study checked first


def test_every_method_s_study_is_checked_before_any_trial_trains(tmp_path, capsys):
    """Before: onehot (searched now, through train.lr) trained its trials, then label_smoothing's
    study of another setting stopped the command."""
    assert tune(tmp_path, methods="onehot,label_smoothing", trials=1) == 0
    journal = journal_of(tmp_path)
    before = journal.read_bytes()
    capsys.readouterr()
    code = tune(tmp_path, "--space", "train.lr=1e-3:1e-2:log", methods="onehot,label_smoothing", trials=2)
    err = capsys.readouterr().err
    assert code == 2 and "differs in space.train.lr" in err
    assert len(err.strip().splitlines()) == 1, err
    assert journal.read_bytes() == before  # not even onehot's new study is written
    assert not list((tmp_path / EXPERIMENT / "tuning").glob("trial*/onehot"))


# ---------------------------------------------------------------------------- what the table says


def test_a_method_whose_trials_all_score_the_same_is_noted_under_the_table(tmp_path, capsys):
    """lwr updates its soft labels every k epochs: with 2 epochs, k of 3 to 5 never takes effect."""
    assert tune(tmp_path, "--space", "k=3:5", methods="lwr", trials=3) == 0
    out = capsys.readouterr().out
    values = {t["value"] for t in read_tuning(tmp_path / EXPERIMENT)["methods"]["lwr"]["trials"]}
    assert len(values) == 1
    note = f"lwr: all 3 trials scored the same dev error ({values.pop():.2f})"
    table = table_of(tmp_path)
    assert note in table and note in out
    assert table.index(note) > table.index("| lwr |")  # under the table
    assert main(["report", str(tmp_path / EXPERIMENT)]) == 0
    assert note in (tmp_path / EXPERIMENT / "report.html").read_text()  # and under the report's


def test_a_method_whose_trials_differ_gets_no_such_note(tmp_path):
    assert tune(tmp_path, "--space", "train.lr=1e-4:1e-1:log", trials=3) == 0
    assert "scored the same" not in table_of(tmp_path)


# ---------------------------------------------------------------------------- the default setting is a trial


def test_each_method_s_first_trial_is_its_default_setting(tmp_path, capsys):
    """Before: every trial was drawn, so on a wide learning-rate range "tuned" could be far worse
    than the default it never tried."""
    wide = ["--space", "train.lr=1e-6:1e-2:log"]
    assert tune(tmp_path, *wide, methods="onehot,label_smoothing", trials=3) == 0
    out = capsys.readouterr().out
    record = read_tuning(tmp_path / EXPERIMENT)
    defaults = {"onehot": {"train.lr": 0.001}, "label_smoothing": {"epsilon": 0.1, "train.lr": 0.001}}
    for method, default in defaults.items():
        study = record["methods"][method]
        first = study["trials"][0]
        assert first["params"] == default and first["default"] is True
        assert not any(t["default"] for t in study["trials"][1:])
        assert study["best_value"] <= first["value"]  # the tuned setting is never worse on the tuning seed
    # Three trials are all within TPE's random start-up: the table says so.
    startup = "within the TPE sampler's random start-up (its first 10 trials are drawn at random"
    assert startup in table_of(tmp_path)
    assert "within the TPE sampler's random start-up" in out


def test_a_default_outside_the_searched_range_is_clamped_to_it_and_noted(tmp_path):
    assert tune(tmp_path, "--space", "train.lr=1e-2:1e-1:log", trials=1) == 0
    first = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]["trials"][0]
    assert first["params"] == {"epsilon": 0.1, "train.lr": 0.01}
    note = (
        "label_smoothing: its default train.lr 0.001 lies outside the searched 0.01:0.1:log; "
        "its default trial used 0.01."
    )
    assert note in table_of(tmp_path)


def test_a_best_trial_that_is_the_default_setting_says_so(tmp_path, capsys):
    """One trial is the default setting: the table says the default won, and its tuned runs give
    the default runs' numbers (the same config at the same seeds)."""
    assert tune(tmp_path, trials=1, seeds="1-2") == 0
    out = capsys.readouterr().out
    study = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]
    assert study["best_trial"] == 0 and study["trials"][0]["default"] is True
    assert "label_smoothing: best dev error" in out and "with epsilon 0.1 (its default setting)" in out
    row = next(line for line in table_of(tmp_path).splitlines() if line.startswith("| label_smoothing"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3] == "default: epsilon 0.1"
    assert cells[4] == cells[5] and cells[6] == "+0.00"


def test_a_resumed_study_with_its_default_trial_draws_what_an_uninterrupted_one_draws(tmp_path):
    assert tune(tmp_path / "whole", trials=3) == 0
    assert tune(tmp_path / "parts", trials=1) == 0
    assert tune(tmp_path / "parts", trials=3) == 0
    whole, parts = (
        read_tuning(tmp_path / name / EXPERIMENT)["methods"]["label_smoothing"] for name in ("whole", "parts")
    )
    assert [(t["params"], t["default"]) for t in whole["trials"]] == [
        (t["params"], t["default"]) for t in parts["trials"]
    ]


# ---------------------------------------------------------------------------- the console


def test_the_best_dev_score_is_printed_rounded(tmp_path, capsys):
    """Before: `best dev error 56.52173913043478 with {'epsilon': 0.2378...}`."""
    assert tune(tmp_path, "--space", "train.lr=1e-4:1e-2:log", trials=2) == 0
    out = capsys.readouterr().out
    study = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]
    line = next(line for line in out.splitlines() if line.startswith("label_smoothing: best"))
    assert line.startswith(f"label_smoothing: best dev error {study['best_value']:.2f} with ")
    assert not re.search(r"\.0*[1-9]\d{3,}", out), out  # 4 significant digits or more
    assert json.dumps(study["best_params"]) not in line


def test_a_p_left_out_for_seeds_without_spread_is_noted_under_the_tuning_table():
    """Welch's p is '-' where neither group's seeds vary and their scores differ (welch_p): the tuning
    table says why, as the comparison table does."""
    from labelemb.analysis.tuning import _both_vary_not, tuning_notes

    assert _both_vary_not([4.0, 4.0], [2.0, 2.0, 2.0], True)
    assert not _both_vary_not([4.0, 4.5], [2.0, 2.0], True)  # one group varies: p exists
    assert not _both_vary_not([4.0], [2.0, 2.0], True)  # one seed: no p at all
    assert not _both_vary_not([4.0, 4.0], [2.0, 2.0], False)  # not compared (onehot against itself)
    row = {"method": "ols", "searched": "epsilon", "trials": 12, "same_score": None, "default_adjusted": {}}
    record = {"objective": {"name": "dev error"}, "sampler": {"startup_trials": 10}}
    assert not any("no spread" in note for note in tuning_notes([row], record))
    notes = tuning_notes([{**row, "no_spread": True}], record)
    assert any("scores the same and so does every seed of tuned onehot" in note for note in notes)
