"""Which tune holds a running trial (labelemb.tuning.owner): a dead driver's trials are retried, a
live one's are left to it, and neither a shared host name nor a reused process id fools it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from labelemb.experiment import base_config
from labelemb.tuning import Tuner, TuneSetting, open_storage, run_number, setting_record
from labelemb.tuning import owner as owner_module
from labelemb.tuning.owner import (
    BOOT_ID_FILE,
    MACHINE_ID_FILES,
    current_owner,
    is_alive,
    process_start,
    runs_here,
)

LINUX = Path("/proc/self/stat").exists()


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(child.stdout)


def test_the_record_names_this_process_and_where_it_runs():
    owner = current_owner()
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    # The first of the files that holds an id (some containers have an empty machine-id).
    written = [p.read_text().strip() for p in MACHINE_ID_FILES if p.exists()]
    assert owner["machine"] == next((text for text in written if text), None)
    assert owner["boot"] == ((BOOT_ID_FILE.read_text().strip() or None) if BOOT_ID_FILE.exists() else None)
    if LINUX:
        # Field 22 of /proc/<pid>/stat, read by hand: ticks after boot, no later than now.
        stat = Path(f"/proc/{os.getpid()}/stat").read_text()
        assert owner["started"] == int(stat.rsplit(")", 1)[1].split()[19])
    assert runs_here(owner) and is_alive(owner)


def test_a_process_that_exited_is_dead():
    owner = {**current_owner(), "pid": dead_pid(), "started": None}
    assert runs_here(owner) and not is_alive(owner)
    assert process_start(owner["pid"]) is None


@pytest.mark.skipif(not LINUX, reason="process start times come from Linux's /proc")
def test_a_process_id_taken_by_another_process_is_dead():
    """After a reboot or a wrap of process ids, a live process may hold a dead driver's id."""
    owner = current_owner()
    assert not is_alive({**owner, "started": owner["started"] - 1})


@pytest.fixture
def ids(tmp_path, monkeypatch):
    """This machine's id and boot id, from files of the test's own (not every machine has both)."""
    machine, boot = tmp_path / "machine-id", tmp_path / "boot_id"
    machine.write_text("this-machine\n")
    boot.write_text("this-boot\n")
    monkeypatch.setattr(owner_module, "MACHINE_ID_FILES", (machine,))
    monkeypatch.setattr(owner_module, "BOOT_ID_FILE", boot)


def test_every_process_of_an_earlier_boot_is_dead(ids):
    owner = current_owner()
    assert owner["boot"] == "this-boot" and is_alive(owner)
    assert not is_alive({**owner, "boot": "an-earlier-boot"})


def test_a_machine_is_told_by_its_id_not_its_host_name(ids):
    owner = current_owner()
    assert owner["machine"] == "this-machine" and runs_here(owner)
    assert not runs_here({**owner, "machine": "another-machine-of-the-same-name"})
    # A record from before machine ids: the host name decides.
    assert runs_here({"host": socket.gethostname(), "pid": 1})
    assert not runs_here({"host": socket.gethostname() + "-elsewhere", "pid": 1})


# ------------------------------------------------------------------------------------- in a study


def study_with_a_running_trial(tmp_path, owner):
    # The command line's setting without --config (the demo's): what `labelemb tune` tunes below.
    base = base_config(None, ["train.epochs=2", "train.eval_every=600", f"output_dir={tmp_path}"])
    setting = TuneSetting(base, ["label_smoothing"], trials=2)
    name = f"{base.experiment}:label_smoothing"
    study = optuna.create_study(study_name=name, storage=open_storage(setting.storage_text))
    study.set_user_attr("setting", setting_record(setting, "label_smoothing"))
    trial = study.ask()
    trial.suggest_float("epsilon", 0.0, 0.3)
    trial.set_user_attr("owner", owner)
    return setting, study


def states(study):
    return [(t.number, t.state.name, run_number(t)) for t in study.get_trials()]


def test_a_trial_of_another_machine_of_the_same_host_name_is_left_to_it(tmp_path, ids):
    """Before: the host name and a process id not alive here closed another machine's live trial."""
    elsewhere = {**current_owner(), "machine": "another-machine", "pid": dead_pid(), "started": None}
    setting, study = study_with_a_running_trial(tmp_path, elsewhere)
    Tuner(setting, executor=None, slots=1)._retry_orphans(study)
    assert states(study) == [(0, "RUNNING", 0)]


def test_retry_running_trains_the_trials_of_a_tune_on_a_machine_that_is_gone(tmp_path):
    """A journal copied from another machine: its running trials are closed and trained here."""
    from labelemb.cli import main

    gone = {"host": "a-machine-that-is-gone", "machine": "gone", "boot": "gone", "pid": 1, "started": 1}
    _, study = study_with_a_running_trial(tmp_path, gone)
    args = ["tune", "--methods", "label_smoothing", "--trials", "2", "--seeds", "1", "--no-progress"]
    overrides = ["train.epochs=2", "train.eval_every=600"]
    assert main([*args, "--retry-running", "--output-dir", str(tmp_path), *overrides]) == 0
    assert states(study)[:2] == [(0, "FAIL", 0), (1, "COMPLETE", 0)]  # the retry, in trial 0's folder
    assert [t.state.name for t in study.get_trials()].count("COMPLETE") == 2
