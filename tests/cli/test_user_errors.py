"""What a new user meets on the command line: every mistake is one line on stderr with exit code 2
(never a traceback, never after the work), damaged run folders are named, runs say what they reuse,
progress shows in a terminal and in a log, and two processes on one output folder share the work."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from labelemb.cli import build_parser, main
from labelemb.cli.index import check_against_index, read_index
from labelemb.rundir import RunDir
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

#: The smallest real run: digits, a 16-unit MLP, one epoch.
QUICK = ["model.hidden=[16]", "train.epochs=1", "--no-progress"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exit:  # argparse's own checks (the seeds' format) exit from the parser
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, command: str, *words: str) -> None:
    """Exit code 2, and stderr is exactly one line, ``labelemb COMMAND: error: ...``, with ``words``."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"labelemb {command}: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits, one_thread):
    """Finished label_embedding and onehot runs of one experiment (copied per test before damage)."""
    root = tmp_path_factory.mktemp("finished")
    for method in ("label_embedding", "onehot"):
        config = build_config(
            {
                "experiment": "exp",
                "output_dir": str(root),
                "model": {"name": "mlp", "hidden": [16]},
                "method": {"name": method},
                "train": {"epochs": 2, "progress": False},
            }
        )
        train(config, dataset=digits)
    return root


@pytest.fixture
def runs(finished, tmp_path):
    """A private copy of the finished runs: ``runs / "exp" / method / "seed0"``."""
    copy = tmp_path / "runs"
    shutil.copytree(finished, copy)
    return copy


# ---------------------------------------------------------------- one line, exit 2, before any work


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--method", "label_embedding", "tau=abc"], ["tau=abc", "is not a number", "e.g. tau=2.0"]),
        (["--method", "label_embedding", "compressed_dim=1.5"], ["compressed_dim", "whole number"]),
        (["--method", "onehot", "model.hidden=abc"], ["model.hidden=abc", "list"]),
        (
            ["--method", "onehot", "train.epoch=3"],
            ["'train.epoch' does not exist", "did you mean 'train.epochs'"],
        ),
        (["--method", "onehot", "epochs=3"], ["no option(s) epochs", "did you mean train.epochs"]),
        (["--method", "onehot", "data.augment.flp=true"], ["did you mean 'data.augment.flip'"]),
        (
            ["--method", "label_embeding"],
            ["unknown method 'label_embeding'", "did you mean 'label_embedding'"],
        ),
        (["--method", "onehot", "model.name=mpl"], ["unknown model 'mpl'", "did you mean 'mlp'"]),
        (["--method", "label_embedding_fixed"], ["needs option(s) embedding", "embedding=..."]),
        (["--method", "onehot", "train.device=gpu0"], ["'gpu0' is not a device", "cpu, cuda"]),
        (["--method", "onehot", "--seeds", "3-1"], ["'3-1' is reversed", "write 1-3"]),
        (["--method", "onehot", "--seeds", "0-2,1"], ["seed(s) 1 more than once"]),
        (["--method", "onehot", "--seeds", "x"], ["must look like"]),
        (["--method", "onehot", "--jobs", "2"], ["unrecognized arguments: --jobs"]),
    ],
    ids=lambda value: (
        "_".join(value) if isinstance(value, list) and value and value[0] == "--method" else None
    ),
)
def test_a_mistake_in_train_is_one_line_with_exit_code_2_and_nothing_written(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["train", "--output-dir", str(out), *QUICK, *args], capsys)
    assert_one_line_error(code, err, "train", *words)
    assert stdout == ""
    assert not out.exists()


def test_compare_with_a_reversed_or_empty_seed_range_names_it(tmp_path, capsys):
    for seeds, words in (("3-1", ["'3-1' is reversed"]), ("", ["must look like"])):
        code, _, err = run_cli(["compare", "--methods", "onehot", "--seeds", seeds, *QUICK], capsys)
        assert_one_line_error(code, err, "compare", *words)


def test_a_config_that_is_a_folder_or_not_utf8_is_named(tmp_path, capsys):
    code, _, err = run_cli(["train", "--config", str(tmp_path), *QUICK], capsys)
    assert_one_line_error(code, err, "train", str(tmp_path), "is a folder")
    binary = tmp_path / "bad.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run_cli(["train", "--config", str(binary), *QUICK], capsys)
    assert_one_line_error(code, err, "train", str(binary), "UTF-8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --device cuda is valid here")
def test_a_device_this_machine_lacks_is_one_line_before_any_work(tmp_path, capsys):
    for device in ("cuda", "cuda:3"):
        out = tmp_path / device.replace(":", "")
        code, _, err = run_cli(["train", "--device", device, "--output-dir", str(out), *QUICK], capsys)
        assert_one_line_error(code, err, "train", f"'{device}'", "CUDA is not available", "--device cpu")
        assert not out.exists()


def test_an_output_folder_that_cannot_be_written_fails_before_the_data_is_read(tmp_path, capsys, monkeypatch):
    from labelemb.assembly.parts import DataSource

    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the output folder was checked")

    monkeypatch.setattr(DataSource, "load", no_data)
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    for output in (a_file, a_file / "below"):
        code, _, err = run_cli(["train", "--method", "onehot", "--output-dir", str(output), *QUICK], capsys)
        assert_one_line_error(code, err, "train", "cannot create the run folder", "is a file", "--output-dir")
    assert a_file.read_text() == "not a folder"


def test_an_unwritable_output_folder_is_named(tmp_path, capsys, monkeypatch):
    # Root writes anywhere, so the refusal is simulated where the probe file is made.
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = run_cli(
        ["train", "--method", "onehot", "--output-dir", str(tmp_path / "ro"), *QUICK], capsys
    )
    assert_one_line_error(code, err, "train", "is not writable", "Permission denied", "--output-dir")


def test_an_unknown_method_option_gets_the_same_message_with_or_without_a_run_folder(tmp_path, capsys):
    args = ["train", "--method", "onehot", "--output-dir", str(tmp_path), "tua=3", *QUICK]
    code, _, before = run_cli(args, capsys)
    assert_one_line_error(code, before, "train", "method 'onehot' has no option(s) tua")
    code, _, _ = run_cli(["train", "--method", "onehot", "--output-dir", str(tmp_path), *QUICK], capsys)
    assert code == 0
    code, _, after = run_cli(args, capsys)
    assert after == before


NOISE_RATE_REFUSAL = "noise.rate 1.5: the share of training labels made wrong, a number in [0, 1)"


def test_a_noise_rate_out_of_range_says_what_the_rate_is_and_its_range_before_torch_is_imported(
    tmp_path, capsys
):
    argv = ["train", "--output-dir", str(tmp_path / "out"), "noise.kind=symmetric", "noise.rate=1.5", *QUICK]
    args, extra = build_parser().parse_known_args(argv)
    args.overrides += extra
    with pytest.raises(ValueError) as early:  # the light index, read before torch
        check_against_index(args, read_index())
    assert str(early.value) == NOISE_RATE_REFUSAL
    within = build_parser().parse_args(["train", "noise.kind=symmetric", "noise.rate=0.2"])
    check_against_index(within, read_index())
    # The full checks (the registries are loaded in this process) say the same line, of a file too.
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "train", NOISE_RATE_REFUSAL)
    config = tmp_path / "noisy.yaml"
    config.write_text("noise: {kind: pairflip, rate: 1.5}\n")
    code, _, err = run_cli(["train", "--config", str(config), *argv[1:3], *QUICK], capsys)
    assert_one_line_error(code, err, "train", NOISE_RATE_REFUSAL)
    assert not (tmp_path / "out").exists()
    # A fresh command line refuses it as it refuses a key's typo: without importing torch.
    script = (
        "import sys\n"
        "from labelemb.cli import main\n"
        f"code = main({argv!r})\n"
        "print(code, 'torch' in sys.modules, 'pydantic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert done.stderr == f"labelemb train: error: {NOISE_RATE_REFUSAL}\n"


# ---------------------------------------------------------------- damaged run folders


def damage(path: Path, how: str) -> None:
    """Tear a file (keep its first bytes), fill it with garbage, or replace it with valid but wrong JSON."""
    if how == "torn":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    elif how == "garbage":
        path.write_bytes(b"\x00garbage{[")
    else:
        path.write_text(how)


@pytest.mark.parametrize(
    ("file", "how"),
    [
        ("summary.json", "garbage"),
        ("summary.json", "[]"),
        ("summary.json", "{}"),
        ("metrics.jsonl", "torn"),
        ("metrics.jsonl", "[1]\n"),
        ("metrics.jsonl", '{"step": 1}\n'),
        ("label_representation.safetensors", "torn"),
        ("config.yaml", "train: {epochs: [\n"),
        ("config.yaml", "train: {epochs: abc}\n"),
    ],
)
def test_every_command_names_a_damaged_file_of_a_run_folder(runs, capsys, file, how):
    run = runs / "exp" / "label_embedding" / "seed0"
    damage(run / file, how)
    commands = {
        "similar": ["similar", str(run)],
        "analyze": ["analyze", str(run), "--output-dir", str(runs / "analysis")],
        "compare": ["compare", "--summarize", str(runs / "exp")],
        "train": [
            "train",
            "--method",
            "label_embedding_fixed",
            f"embedding={run}",
            "--output-dir",
            str(runs / "fixed"),
            *QUICK,
        ],
        "resume": [
            "train",
            "--method",
            "label_embedding",
            "experiment=exp",
            "--output-dir",
            str(runs),
            "model.hidden=[16]",
            "train.epochs=2",
            "--no-progress",
        ],
    }
    readers = {
        "summary.json": ["similar", "analyze", "compare", "resume"],
        "metrics.jsonl": ["compare"],
        "label_representation.safetensors": ["similar", "analyze", "train"],
        "config.yaml": ["resume"],
    }
    for name in readers[file]:
        code, _, err = run_cli(commands[name], capsys)
        assert_one_line_error(code, err, commands[name][0], str(run / file))


# ---------------------------------------------------------------- what a run says and shows


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, command in commands.choices.items():
        assert summaries.get(name), f"labelemb {name} has no one-line help in `labelemb --help`"
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 8, (
                f"labelemb {name} {action.option_strings or action.dest}"
            )


def test_progress_in_a_log_is_a_line_per_evaluation_not_a_bar(tmp_path):
    """stderr to a file (not a terminal): no carriage-return bar, one line per check."""
    result = subprocess.run(
        [sys.executable, "-m", "labelemb", "train", "--method", "onehot", "--output-dir", str(tmp_path),
         "model.hidden=[16]", "train.epochs=3"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "it/s" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("onehot seed 0: step")]
    assert [line.split(",")[0] for line in lines] == [
        "onehot seed 0: step 12/36",
        "onehot seed 0: step 24/36",
        "onehot seed 0: step 36/36",
    ]
    assert "epoch 3.00/3: dev_error" in lines[-1]


def test_compare_batched_shows_progress_and_says_what_it_reuses(tmp_path, capsys, monkeypatch):
    base = ["--output-dir", str(tmp_path), "model.hidden=[16]", "train.epochs=1"]
    assert main(["train", "--method", "onehot", "--seed", "0", "--no-progress", *base]) == 0
    capsys.readouterr()
    code = main(["compare", "--methods", "onehot,label_embedding", "--seeds", "0-2", "--batched", *base])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"reusing {tmp_path / 'demo-digits-mlp' / 'onehot' / 'seed0'}, finished" in err
    assert "label_embedding seeds 0-2 (batched): step 12/12" in err  # progress of the side-by-side group
    table = (tmp_path / "demo-digits-mlp" / "comparison.md").read_text()
    # onehot's seed 0 trained alone, seeds 1-2 side by side: its time is marked, with a note.
    assert "(mixed)" in table.split("| onehot |")[1].splitlines()[0]
    assert "s / epoch: some runs trained side by side" in table


def test_demo_with_one_seed_and_one_epoch_reads_naturally(tmp_path, capsys):
    code = main(["demo", "--output-dir", str(tmp_path), "--seeds", "0", "--epochs", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "seeds 0-0" not in out and "training onehot on the bundled digits, seed 0 ..." in out


def test_a_method_without_a_representation_needs_no_data_afterwards(runs, capsys, monkeypatch):
    import labelemb.analysis.representation as representation

    def no_data(*args, **kwargs):
        raise AssertionError("similar read the dataset")

    monkeypatch.setattr(representation, "load_run_data", no_data)
    code, out, err = run_cli(["similar", str(runs / "exp" / "onehot" / "seed0"), "--top", "2"], capsys)
    assert code == 0, err
    assert "using the mean softmax on dev" in out


def test_an_old_onehot_run_without_its_representation_says_why_it_needs_the_data(runs, capsys, monkeypatch):
    import labelemb.analysis.representation as representation
    from labelemb.data import DataError

    def missing(config):
        raise DataError(f"no {config.data.name} files in {config.data.dir}")

    monkeypatch.setattr(representation, "load_run_data", missing)
    run = runs / "exp" / "onehot" / "seed0"
    (run / "label_representation.safetensors").unlink()  # as runs finished before it was saved
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("representation_source")
    (run / "summary.json").write_text(json.dumps(summary))
    code, _, err = run_cli(["similar", str(run), "--data-dir", str(runs / "no-data")], capsys)
    assert_one_line_error(code, err, "similar", "was trained before runs saved a label representation")
    assert "no digits files in" in err


# ---------------------------------------------------------------- two processes, one output folder


def compare_command(output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "labelemb", "compare", "--methods", "onehot,label_embedding", "--seeds", "0-2",
        "--output-dir", str(output), "model.hidden=[16]", "train.epochs=2", "--no-progress", *extra,
    ]  # fmt: skip


def results(output: Path) -> dict[str, tuple[float, float, int]]:
    found = {}
    for folder in sorted((output / "demo-digits-mlp").glob("*/seed*")):
        summary = RunDir(folder).read_summary()
        metrics = RunDir(folder).read_metrics()
        found[f"{folder.parent.name}/{folder.name}"] = (
            summary["selected_test_error"],
            summary["final_test_error"],
            len(metrics),
        )
    return found


@pytest.mark.parametrize(
    ("batched", "delay"), [(False, 0.0), (True, 0.5)], ids=["sequential-at-once", "batched-later"]
)
def test_two_compares_on_one_output_folder_share_the_runs(tmp_path, delay, batched):
    """Started at the same moment or half a second apart: both exit 0, no process deletes the other's
    files, and every run ends as a comparison in one process makes it."""
    extra = ["--batched"] if batched else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    alone = tmp_path / "alone"
    subprocess.run(compare_command(alone, *extra), check=True, capture_output=True, timeout=600, env=env)

    shared = tmp_path / "shared"
    first = subprocess.Popen(compare_command(shared, *extra), stderr=subprocess.PIPE, text=True, env=env)
    if delay:
        import time

        time.sleep(delay)
    second = subprocess.run(
        compare_command(shared, *extra), capture_output=True, text=True, timeout=600, env=env
    )
    first_err = first.communicate(timeout=600)[1]
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second.stderr
    assert "No such file" not in first_err + second.stderr
    assert results(shared) == results(alone)
    assert len(results(shared)) == 6
    for folder in (shared / "demo-digits-mlp").glob("*/seed*"):
        assert not list(folder.glob(".*.tmp")), folder


def test_a_run_folder_owned_by_another_process_is_not_claimed(tmp_path):
    folder = RunDir(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import time; from labelemb.rundir import RunDir; "
            f"lock = RunDir({str(folder.path)!r}).claim(wait=False); "
            "print('held', flush=True); time.sleep(30)"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert folder.claim(wait=False) is None
    finally:
        holder.kill()
        holder.wait()
    lock = folder.claim(wait=False)  # the lock dies with its process
    assert lock is not None
    lock.release()


# ---------------------------------------------------------------- threads on a busy machine


def test_the_command_line_leaves_cores_busy_with_other_processes_alone(monkeypatch, caplog):
    import labelemb.training.threads as threads

    monkeypatch.setattr(threads, "_usable_cores", lambda: 4)
    assert threads.free_core_threads(4, 0.1) == 4
    assert threads.free_core_threads(4, 1.2) == 3
    assert threads.free_core_threads(4, 3.9) == 1  # always at least one
    assert threads.free_core_threads(2, None) == 2  # no /proc/stat: torch's choice

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda: 2.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        with caplog.at_level("INFO", logger="labelemb"):
            threads.use_free_cores()
        assert torch.get_num_threads() == 2
        assert "2.0 of 4 cores are busy" in caplog.text and "train.threads=N" in caplog.text
        torch.set_num_threads(4)
        monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the user chose: left alone
        threads.use_free_cores()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_busy_cores_reads_this_machine():
    import labelemb.training.threads as threads

    busy = threads.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= threads._usable_cores() + 1e-9


def test_the_config_file_s_folder_is_no_key_a_file_may_set(tmp_path, capsys):
    """RunConfig.source_folder is the folder the file was read from, never a key of the file."""
    from labelemb.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("source_folder: /elsewhere\ndata: {name: digits}\n")
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "config key 'source_folder' does not exist" in err and err.count("\n") == 0
    assert not (tmp_path / "out").exists()
