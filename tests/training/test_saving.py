"""Every file training writes into a run's folder goes through one door, the Saver; the loop only
loops, and a check's record is made by the evaluation."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

import labelemb.training
from labelemb.rundir import CHECKPOINT_FILE, METRICS_FILE, SELECTED_MODEL_FILE
from labelemb.tasks import Classification
from labelemb.training import build_run
from labelemb.training.results import last_is_selected
from labelemb.training.saving import Saver, start_record

TRAIN = Path(labelemb.training.__file__).parent
#: Where a run folder may be written besides the saver: a continued run's folder is copied from
#: the run it continues before it trains (labelemb.training.continuation).
BESIDE_THE_SAVER = {"saving.py", "continuation.py"}
WRITES = {"start", "write_text_file", "write_metrics", "write_checkpoint", "write_selected_weights"}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_file_a_run_writes_goes_through_the_saver():
    writes = []
    for path in sorted(TRAIN.glob("*.py")):
        if path.name in BESIDE_THE_SAVER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = node.func if isinstance(node, ast.Call) else None
            if isinstance(called, ast.Attribute) and (
                called.attr in WRITES or called.attr == "write_results"
            ):
                if "folder" in ast.unparse(called.value):
                    writes.append(f"training/{path.name}:{node.lineno}: {ast.unparse(called)}")
    assert writes == []


def check(run, dev_error: float, step: int) -> None:
    run.progress.step = step
    run.progress.records.append({"step": step, "epoch": step / 10, "dev_error": dev_error, "test_error": 1.0})


def test_a_saver_writes_each_check_and_the_weights_of_the_one_the_run_reports(small_config, digits):
    task = Classification()
    run = build_run(small_config(), digits, torch.device("cpu"), task)
    saver = Saver()
    saver.start([run], {"vocabulary.txt": "a\n"}, run.plan.data.request, digits)
    state = {"network": run.network.state_dict(), "optimizer": {}}
    check(run, 5.0, 1)
    assert last_is_selected(run.progress.records, task, "best_dev")
    saver.check(run, {}, lambda: state, selected=True)
    assert torch.load(run.folder.file(SELECTED_MODEL_FILE))["step"] == 1
    check(run, 7.0, 2)  # worse on dev: not the check the run reports
    assert not last_is_selected(run.progress.records, task, "best_dev")
    saver.check(run, {}, lambda: state, selected=False)
    assert torch.load(run.folder.file(SELECTED_MODEL_FILE))["step"] == 1
    assert torch.load(run.folder.file(CHECKPOINT_FILE))["progress"]["step"] == 2
    assert len(run.folder.read_metrics()) == 2
    assert (run.folder.path / "vocabulary.txt").read_text() == "a\n"
    started = json.loads((run.folder.path / "start.json").read_text())
    assert started == start_record(run.plan.data.request, digits)  # what the run records at its start


def test_a_saver_that_does_not_write_writes_nothing(small_config, digits):
    task = Classification()
    run = build_run(small_config(), digits, torch.device("cpu"), task)
    saver = Saver(writes=False)

    def no_state():
        raise AssertionError("a saver that does not write asked for the checkpoint's state")

    saver.start([run], {"vocabulary.txt": "a\n"}, run.plan.data.request, digits)
    check(run, 5.0, 1)
    saver.check(run, {"decoded.txt": "text"}, no_state, selected=True)
    saver.results(run, {}, {"summary": True})
    assert not run.folder.path.exists()
    assert not (run.folder.path / METRICS_FILE).exists()


def test_a_run_records_where_its_data_was_looked_for_when_it_starts(small_config, digits, tmp_path):
    from labelemb.assembly.plan import plan_run

    config = small_config(f"data.dir={tmp_path}").model_copy(update={"source_folder": str(tmp_path / "cfg")})
    record = start_record(plan_run(config).data.request, digits)
    assert record["data_folders"] == {"config_folder": str(tmp_path / "cfg"), "dir": str(tmp_path.resolve())}
    assert record["class_names"] == list(digits.class_names)
