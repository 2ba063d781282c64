"""A run records the code that made its numbers, and a reused run of other code says so."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from labelemb.cli import main
from labelemb.training import train
from labelemb.version import __version__, code_version, source_version


def git(folder, *args):
    command = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@localhost", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_a_checkout_of_the_package_gives_its_commit_and_whether_its_files_changed(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "version.py").write_text("__version__ = '0'\n")
    (tmp_path / "README.md").write_text("readme\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    commit = git(tmp_path, "rev-parse", "--short=12", "HEAD")
    assert source_version(package) == f"{__version__}+g{commit}"
    # Only the package's own tracked files count: not the rest of the checkout, not new files.
    (tmp_path / "README.md").write_text("edited\n")
    (package / "new.py").write_text("x = 1\n")
    assert source_version(package) == f"{__version__}+g{commit}"
    (package / "version.py").write_text("__version__ = '1'\n")
    assert source_version(package) == f"{__version__}+g{commit}.dirty"


def test_a_package_no_checkout_tracks_has_the_bare_version(tmp_path):
    assert source_version(tmp_path) == __version__  # no git checkout at all
    # A package inside somebody else's repository (a virtual environment in a project) is not
    # that repository's code.
    git(tmp_path, "init", "-q")
    (tmp_path / "tracked.txt").write_text("x\n")
    git(tmp_path, "add", "tracked.txt")
    git(tmp_path, "commit", "-q", "-m", "theirs")
    package = tmp_path / "venv" / "labelemb"
    package.mkdir(parents=True)
    (package / "version.py").write_text("__version__ = '0'\n")
    assert source_version(package) == __version__


def test_a_run_records_its_code_and_a_reused_run_of_other_code_says_so(tmp_path, capsys):
    args = ["train", "--method", "onehot", "--no-progress", "--output-dir", str(tmp_path)]
    args += ["model.hidden=[8]", "train.epochs=1"]
    assert main(args) == 0
    summary_file = tmp_path / "demo-digits-mlp" / "onehot" / "seed0" / "summary.json"
    summary = json.loads(summary_file.read_text())
    assert summary["labelemb"] == code_version() and code_version().startswith(__version__)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "finished\n" in err or err.rstrip().endswith("finished"), err  # the same code: no more said
    summary["labelemb"] = "0.0.1+g0123456789ab"
    summary_file.write_text(json.dumps(summary))
    assert main(args) == 0
    err = capsys.readouterr().err
    said = f"finished by labelemb 0.0.1+g0123456789ab (this is {code_version()}): its numbers are that code's"
    assert said in err
    # Finished by this code, but resumed from a checkpoint of other code: the note names each part.
    summary["labelemb"] = code_version()
    summary["trained_by"] = [
        {"labelemb": "0.0.1+g0123456789ab.dirty", "from_step": 0},
        {"labelemb": code_version(), "from_step": 40},
    ]
    summary_file.write_text(json.dumps(summary))
    assert main(args) == 0
    parts = f"0.0.1+g0123456789ab.dirty from step 0, then {code_version()} from step 40"
    assert f"finished in parts, by labelemb {parts} (this is {code_version()})" in capsys.readouterr().err
    del summary["labelemb"], summary["trained_by"]  # a run from before runs recorded it
    summary_file.write_text(json.dumps(summary))
    assert main(args) == 0
    assert "finished by a labelemb that recorded no version" in capsys.readouterr().err


class Stop(Exception):
    """Raised from on_checkpoint: the run is killed after its first checkpoint."""


def stop_at_first_check(progress) -> None:
    raise Stop


@pytest.mark.parametrize("earlier", ["0.0.1+g0123456789ab", None], ids=["other code", "no record"])
def test_a_run_resumed_under_other_code_records_the_code_of_each_part(small_config, digits, earlier):
    """Before: only the code that finished a run was recorded, whatever trained its first part."""
    config = small_config("train.eval_every=300", "method.name=onehot")
    with pytest.raises(Stop):
        train(config, dataset=digits, on_checkpoint=stop_at_first_check)
    checkpoint_file = config.run_dir() / "checkpoint.pt"
    checkpoint = torch.load(checkpoint_file, weights_only=False)
    step = checkpoint["progress"]["step"]
    assert step > 0 and checkpoint["progress"]["code"] == [{"labelemb": code_version(), "from_step": 0}]
    if earlier is None:
        del checkpoint["progress"]["code"]  # a checkpoint from before runs recorded their code
    else:
        checkpoint["progress"]["code"] = [{"labelemb": earlier, "from_step": 0}]
    torch.save(checkpoint, checkpoint_file)
    summary = train(config, dataset=digits)
    assert summary["labelemb"] == code_version()
    assert summary["trained_by"] == [
        {"labelemb": earlier, "from_step": 0},
        {"labelemb": code_version(), "from_step": step},
    ]


def test_a_run_of_one_code_names_no_parts(small_config, digits):
    config = small_config("train.eval_every=300", "method.name=onehot")
    with pytest.raises(Stop):
        train(config, dataset=digits, on_checkpoint=stop_at_first_check)
    summary = train(config, dataset=digits)  # resumed by the same code
    assert "trained_by" not in summary and summary["labelemb"] == code_version()
