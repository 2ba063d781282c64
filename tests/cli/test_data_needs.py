"""Every data set a run will read is found before anything trains (one line if not), and an
evaluation that fails after training fails the command, naming the runs and the command that mends them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelemb.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

#: The smallest real run: digits, a 16-unit MLP, one epoch.
QUICK = ["model.hidden=[16]", "train.epochs=1", "experiment=exp", "--no-progress"]


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No data folder and an empty cache: MNIST is nowhere on this machine, and no download."""
    monkeypatch.setenv("LABELEMB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"labelemb {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_missing_ood_set_is_one_line_before_anything_trains(nowhere, capsys, command):
    out = nowhere / "runs"
    methods = ["--methods", "onehot,label_embedding"] if command == "compare" else []
    args = [command, *methods, "--output-dir", str(out), *QUICK, "ood=[{data: mnist}]", "data.download=false"]
    code, stdout, err = run_cli(args, capsys)
    line = one_error_line(err, command)
    assert code == 2 and stdout == ""
    for words in ("ood set 'mnist'", "MNIST is not on this machine", str(nowhere / "data"), "--data-dir DIR"):
        assert words in line, (words, line)
    assert not out.exists()  # nothing trained


def test_missing_training_data_and_a_missing_ood_file_are_named(nowhere, capsys):
    out = nowhere / "runs"
    code, _, err = run_cli(
        ["train", "--output-dir", str(out), *QUICK, "data.name=mnist", "data.download=false"], capsys
    )
    assert code == 2 and "training data (data.name: mnist): MNIST is not on this machine" in one_error_line(
        err, "train"
    )
    code, _, err = run_cli(["train", "--output-dir", str(out), *QUICK, "ood=[{path: gone.npz}]"], capsys)
    line = one_error_line(err, "train")
    assert code == 2 and "ood set 'gone.npz'" in line
    assert "gone.npz not found" in line and "--data-dir" in line
    assert not out.exists()


def test_a_downloadable_set_is_fetched_before_training_and_a_failed_download_is_one_line(
    nowhere, capsys, monkeypatch
):
    from labelemb.data import DataError
    from labelemb.data import mnist as idx

    def offline(*args, **kwargs):
        raise DataError("could not download train-images-idx3-ubyte.gz from any mirror:\n  mirror 1: offline")

    monkeypatch.setattr(idx, "download_from_mirrors", offline)
    out = nowhere / "runs"
    code, _, err = run_cli(["train", "--output-dir", str(out), *QUICK, "ood=[{data: mnist}]"], capsys)
    line = one_error_line(err, "train")
    assert code == 2 and "MNIST is not on this machine" in line and "its download failed" in line
    assert not out.exists()


def bad_ood_file(folder: Path) -> Path:
    """A file that exists (so the preflight passes) but whose inputs do not fit the digits' network."""
    path = folder / "wrong-shape.npz"
    np.savez(path, x=np.zeros((4, 3), dtype=np.float32))
    return path


def test_an_evaluation_failing_after_training_fails_the_command_and_says_how_to_add_it(tmp_path, capsys):
    out = tmp_path / "runs"
    ood = f"ood=[{{path: {bad_ood_file(tmp_path)}}}]"
    code, stdout, err = run_cli(["train", "--output-dir", str(out), *QUICK, ood], capsys)
    run_dir = out / "exp" / "label_embedding" / "seed0"
    assert code == 1, err
    assert "selected" in stdout  # what trained stands and is printed
    assert f"{run_dir}: not evaluated: ood set 'wrong-shape.npz'" in err
    assert (
        f"1 run(s) lack their evaluation figures ({run_dir}); once the cause above is mended, "
        f"add them with: labelemb evaluate {run_dir}"
    ) in err


def test_several_runs_lacking_figures_get_one_command_for_their_experiment(tmp_path, capsys):
    out = tmp_path / "runs"
    ood = f"ood=[{{path: {bad_ood_file(tmp_path)}}}]"
    args = ["compare", "--methods", "onehot", "--seeds", "0,1", "--output-dir", str(out), *QUICK, ood]
    code, _, err = run_cli(args, capsys)
    assert code == 1, err
    assert "2 run(s) lack their evaluation figures" in err
    assert f"add them with: labelemb evaluate {out / 'exp'}\n" in err


def test_a_text_run_shifted_without_a_test_file_is_refused_before_it_trains(tmp_path, capsys):
    # A hub data set of texts: its test texts are no file that text perturbations could read.
    files = "data.files={format: hub, path: someone/texts}"
    args = ["train", "--output-dir", str(tmp_path), "data.name=files", files, "model.name=bag_of_words"]
    code, _, err = run_cli([*args, "ood=[]", "shift=[text]", "--no-progress"], capsys)
    line = one_error_line(err, "train")
    assert code == 2 and "shift (text perturbations)" in line and "data.files.test" in line
    assert not any(tmp_path.iterdir())
