"""Runs taken in turns by the processes that share an output folder (issue 61: the claiming and
waiting of the trainer, in rundir/): a finished run is read back, a free one is worked on while it
is owned, and one another process holds is skipped or waited for."""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
from filelock import FileLock, Timeout

from labelemb.rundir import LOCK_FILE, SUMMARY_FILE, RunDir, claim_alone, in_turns
from labelemb.version import code_version


def finished(folder: RunDir, code: str | None) -> RunDir:
    """``folder`` holding a finished run's summary, trained by ``code``."""
    folder.path.mkdir(parents=True)
    summary = {"method": "onehot", "seed": 0, "labelemb": code}
    folder.file(SUMMARY_FILE).write_text(json.dumps(summary), encoding="utf-8")
    return folder


def owned_by_this_process(folder: RunDir) -> bool:
    """Whether this process holds ``folder``'s lock (a second lock on the file cannot be had)."""
    try:
        FileLock(folder.file(LOCK_FILE), is_singleton=False).acquire(timeout=0)
    except Timeout:
        return True
    return False


def test_a_finished_run_is_read_back_and_a_free_one_worked_on_while_owned(tmp_path, caplog):
    done = finished(RunDir(tmp_path / "done"), "0.0.1+g0123456789ab")
    free = RunDir(tmp_path / "free")
    owned = []

    def work(mine: list[int]) -> list[dict]:
        owned.extend(owned_by_this_process([done, free][i]) for i in mine)
        return [{"method": "trained"} for _ in mine]

    with caplog.at_level(logging.INFO, logger="labelemb"):
        summaries = in_turns([done, free], work)
    assert summaries[0]["seed"] == 0 and summaries[1] == {"method": "trained"}
    assert owned == [True]
    assert not owned_by_this_process(free)  # let go of once its turn ended
    assert f"reusing {done.path}, finished by labelemb 0.0.1+g0123456789ab (this is {code_version()})" in (
        caplog.text
    )


def held_once(folder: RunDir, owned: contextlib.ExitStack, wait: bool) -> bool:
    """A claim that finds the run held by another process until it is waited for."""
    return wait and claim_alone(folder, owned, wait)


@pytest.mark.parametrize("skip_held", [True, False])
def test_a_run_another_process_holds_is_skipped_or_waited_for(tmp_path, caplog, skip_held):
    held = RunDir(tmp_path / "held")
    turns = []

    def work(mine: list[int]) -> list[dict]:
        turns.append(mine)
        return [{"method": "trained"} for _ in mine]

    with caplog.at_level(logging.INFO, logger="labelemb"):
        summaries = in_turns([held], work, claim=held_once, skip_held=skip_held)
    doing = "skipped" if skip_held else "waiting for it"
    assert f"{held.path}: another process is training it; {doing}" in caplog.text
    assert summaries == ([None] if skip_held else [{"method": "trained"}])
    assert turns == ([] if skip_held else [[0]])


def test_a_run_finished_while_waited_for_is_read_back(tmp_path):
    folder = RunDir(tmp_path / "run")

    def finish_while_held(folder: RunDir, owned: contextlib.ExitStack, wait: bool) -> bool:
        if not wait:
            return False
        finished(folder, code_version())  # by the process that held it
        return claim_alone(folder, owned, wait)

    def work(mine: list[int]) -> list[dict]:
        raise AssertionError("a finished run is never trained again")

    assert in_turns([folder], work, claim=finish_while_held)[0]["labelemb"] == code_version()
