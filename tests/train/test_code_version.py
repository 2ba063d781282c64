"""A run records the code that made its numbers, and a reused run of other code says so."""

from __future__ import annotations

import json
import subprocess

from labelemb.cli import main
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
    summary_file = tmp_path / "demo" / "onehot" / "seed0" / "summary.json"
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
    del summary["labelemb"]  # a run from before runs recorded it
    summary_file.write_text(json.dumps(summary))
    assert main(args) == 0
    assert "finished by a labelemb that recorded no version" in capsys.readouterr().err
