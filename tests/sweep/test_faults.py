"""A run's failure stays with its run (labelemb.sweep.failures): recorded with its one-line reason
while the grid goes on, listed at the end with a non-zero exit; an out-of-memory beside other runs
tried once more alone; Ctrl-C stops everything at once. The same faults on Ray: tests/sweep/test_ray.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch
from helpers.fault_runs import write_project

from labelemb.cli import main
from labelemb.sweep.failures import FailedRun, Failure, RunsFailed, failure_table, is_out_of_memory, one_line
from labelemb.sweep.grid import run_grid
from labelemb.training import load_config


def compare(config, output, *args):
    """``labelemb compare`` of seeds 0-3 in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["compare", "--config", str(config), "--methods", "onehot", "--seeds", "0-3"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--output-dir", str(output), "--no-progress", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_failed_runs_are_listed_and_the_others_train(tmp_path, jobs):
    """Seed 1's factory raises, seed 3 runs out of memory at every step, seed 2 once: the grid goes
    on, seed 2 is tried again alone where runs share the machine (--jobs 2) and trains; the table
    lists seeds 1 and 3 (and 2 at --jobs 1, where no run stood beside it); exit 1; the finished
    runs are compared. (Before, seed 1's error ended the compare.)"""
    config = write_project(tmp_path / "proj")
    code, out, err = compare(config, tmp_path / "out", "--jobs", jobs)
    assert code == 1, err
    runs = tmp_path / "out" / "faults" / "onehot"
    table = out[out.index("run(s) failed:") :]
    assert "| onehot seed 1 |" in table and "raised RuntimeError: a bug that seed 1 meets" in table
    assert "| onehot seed 3 |" in table and "OutOfMemoryError: CUDA out of memory" in table
    assert (runs / "seed0" / "summary.json").is_file()
    said = [line for line in err.splitlines() if line.startswith(f"failed {runs / 'seed1'}: ")]
    assert len(said) == 1 and "a bug that seed 1 meets" in said[0]  # as it failed, in one line
    alone = [line for line in err.splitlines() if "trying it once more alone" in line]
    if jobs == "2":
        assert "| onehot seed 2 |" not in table and (runs / "seed2" / "summary.json").is_file()
        retried = "ran out of memory beside other runs: trying it once more alone"
        assert sorted(alone) == [f"onehot seed {seed} {retried}" for seed in (2, 3)]
    else:
        assert "| onehot seed 2 |" in table and not alone
    assert ("2 of 4 run(s) failed" if jobs == "2" else "3 of 4 run(s) failed") in out
    assert (tmp_path / "out" / "faults" / "comparison.md").is_file()
    for seed in (1, 3):
        assert not (runs / f"seed{seed}" / "summary.json").exists()


def test_the_grid_raises_runs_failed_with_the_finished_summaries(tmp_path):
    overrides = [f"output_dir={tmp_path / 'out'}", "method.name=onehot"]
    config = load_config(write_project(tmp_path / "proj"), overrides)
    with pytest.raises(RunsFailed) as caught:
        run_grid([config.with_seed(seed) for seed in (0, 1)], progress=False)
    assert [f.label for f in caught.value.failed] == ["onehot seed 1"]
    assert [s["seed"] for s in caught.value.summaries] == [0]


def test_ctrl_c_stops_every_worker_at_once(tmp_path):
    """SIGINT to the command alone (as a terminal's Ctrl-C reaches its process group, or a job
    scheduler's signal the command only): it ends within seconds with exit 130 and no worker
    left, though each run would train for minutes (before, the pool waited for the runs)."""
    config = write_project(tmp_path / "proj", epochs=5000)
    argv = [sys.executable, "-m", "labelemb", "compare", "--config", str(config), "--methods", "onehot"]
    argv += ["--seeds", "0,4", "--jobs", "2", "--output-dir", str(tmp_path / "out"), "--no-progress"]
    # As from a terminal: the command starts with Ctrl-C's default action, whatever this process
    # inherited or was left with (an ignored SIGINT is inherited, and Python then keeps ignoring it).
    command = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        checkpoints = [tmp_path / "out" / "faults" / "onehot" / f"seed{s}" / "checkpoint.pt" for s in (0, 4)]
        deadline = time.monotonic() + 120
        while not all(p.exists() for p in checkpoints) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(p.exists() for p in checkpoints), "the runs did not start"
        workers = psutil.Process(command.pid).children(recursive=True)
        assert len(workers) >= 2
        began = time.monotonic()
        os.kill(command.pid, signal.SIGINT)
        _, err = command.communicate(timeout=60)
        assert command.returncode == 130, err
        assert time.monotonic() - began < 15
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers left: {alive}"
        assert "interrupted" in err
    finally:
        if command.poll() is None:
            command.kill()
    summary = tmp_path / "out" / "faults" / "onehot" / "seed0" / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["epochs_trained"] < 5000


def test_tune_lists_the_fresh_runs_that_failed(tmp_path):
    """`labelemb tune`'s fresh seeds are a grid as compare's: seed 1 fails, seed 4 trains, the
    table lists seed 1 and the command exits with 1 (onehot has nothing to search, so no trial runs)."""
    config = write_project(tmp_path / "proj")
    out, err = io.StringIO(), io.StringIO()
    argv = ["tune", "--config", str(config), "--methods", "onehot", "--seeds", "1,4", "--trials", "2"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert code == 1, err.getvalue()
    table = out.getvalue()[out.getvalue().index("1 fresh run(s) failed") :]
    assert "| onehot seed 1 |" in table and "| onehot seed 4 |" not in table
    assert (tmp_path / "out" / "faults" / "onehot" / "seed4" / "summary.json").is_file()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_batched_method_that_fails_leaves_the_other_methods(tmp_path, jobs):
    """With --batched a unit is one method's seeds: static_label's class-vector file is missing, so
    both its seeds fail with that reason; onehot's train, and the command exits 1 (before, at
    --jobs 1 the error ended the compare)."""
    missing = tmp_path / "no-vectors.pt"
    out, err = io.StringIO(), io.StringIO()
    argv = ["compare", "--methods", "onehot,static_label", "--seeds", "0-1", "--batched", "--jobs", jobs]
    argv += ["--output-dir", str(tmp_path / "out"), "--no-progress", f"vectors={missing}", "train.epochs=1"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 1, err.getvalue()
    table = out.getvalue()[out.getvalue().index("2 of 4 run(s) failed") :]
    for seed in (0, 1):
        assert f"| static_label seed {seed} |" in table and f"no class vectors at {missing}" in table
        assert (tmp_path / "out" / "demo-digits-mlp" / "onehot" / f"seed{seed}" / "summary.json").is_file()


def test_a_failure_is_one_line_and_an_out_of_memory_is_known_through_its_causes():
    def raised(error, cause=None):
        try:
            raise error from cause
        except Exception as caught:
            return caught

    assert one_line(RuntimeError("first line\n  second line")) == "RuntimeError: first line"
    assert one_line(KeyError()) == "KeyError"
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory")) and is_out_of_memory(MemoryError())
    assert is_out_of_memory(raised(ValueError("factory raised"), torch.OutOfMemoryError("inner")))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    failure = Failure.of(ValueError("a | b"))
    assert failure.error is not None and not failure.out_of_memory
    table = failure_table([FailedRun("onehot seed 1", "runs/x/onehot/seed1", failure.reason)])
    assert table.splitlines()[2] == "| onehot seed 1 | runs/x/onehot/seed1 | ValueError: a / b |"
