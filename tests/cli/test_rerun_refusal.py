"""A rerun into a folder that holds a run of another config (issue 79): the refusal names what
differs, old value and new, and the ways on; the batch size warning's suggestion, followed as
written, trains instead of meeting that refusal."""

from __future__ import annotations

import re

import pytest

from labelemb.cli import main
from labelemb.rundir import CONFIG_FILE, SUMMARY_FILE

pytestmark = pytest.mark.usefixtures("one_thread")

#: The smallest real run: digits, a 16-unit MLP, one epoch, without --config (the demo's setting).
QUICK = ["train", "--method", "onehot", "--no-progress", "model.hidden=[16]", "train.epochs=1"]
#: One batch an epoch of the digits' 1197 training examples: the warning's case.
TOO_LARGE = "train.batch_size=4096"
EXPERIMENT = "demo-digits-mlp"


def test_the_refusal_names_what_differs_with_both_values_and_the_ways_on(tmp_path, capsys):
    """Before: "differs in: train.batch_size ... choose another output_dir or experiment name, or
    delete that folder", without the values or how to spell either way."""
    assert main([*QUICK, "--output-dir", str(tmp_path), TOO_LARGE]) == 0
    run = tmp_path / EXPERIMENT / "onehot" / "seed0"
    kept = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([*QUICK, "--output-dir", str(tmp_path), "train.batch_size=119", "train.lr=0.01"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{run} already holds a run with a different config" in line
    assert "(differs in: train.batch_size 4096 -> 119, train.lr 0.001 -> 0.01)" in line
    assert "experiment=NAME" in line and "--output-dir" in line
    assert f"move or remove {run} first" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == kept  # nothing removed


def test_a_refusal_lists_a_few_keys_with_their_values_and_counts_the_rest():
    from labelemb.rundir.files import listed_changes

    changes = {
        "train.lr": (0.001, 0.01),
        "model.hidden": ([16], [32]),
        "train.optimizer": ("adam", "sgd"),
        "train.epochs": (1, 2),
        "data.noise": (None, {"kind": "symmetric", "rate": 0.2, "seed": 0, "dev": "noisy", "x": "y"}),
    }
    assert listed_changes(changes) == (
        'data.noise null -> {"kind": "symmetric", "rate": 0.2, "s..., '
        "model.hidden [16] -> [32], train.epochs 1 -> 2 and 2 more key(s)"
    )


def test_the_batch_size_warning_s_suggestion_followed_as_written_trains(tmp_path, capsys):
    """Before, the warning said "e.g. train.batch_size=119", and that rerun was refused: the
    folder held the run of batch size 4096."""
    assert main([*QUICK, "--output-dir", str(tmp_path), TOO_LARGE]) == 0
    err = capsys.readouterr().err
    found = re.search(r"too few to learn .*; .*e\.g\. (.+)$", err, re.MULTILINE)
    assert found, err
    suggested = found.group(1).split()
    assert suggested == ["train.batch_size=119", f"experiment={EXPERIMENT}-bs119"]
    assert main([*QUICK, "--output-dir", str(tmp_path), TOO_LARGE, *suggested]) == 0, capsys.readouterr().err
    assert "too few to learn" not in capsys.readouterr().err
    new = tmp_path / f"{EXPERIMENT}-bs119" / "onehot" / "seed0"
    assert (new / SUMMARY_FILE).is_file() and "batch_size: 119" in (new / CONFIG_FILE).read_text()
    old = tmp_path / EXPERIMENT / "onehot" / "seed0"
    assert "batch_size: 4096" in (old / CONFIG_FILE).read_text()  # the first run kept as it was
