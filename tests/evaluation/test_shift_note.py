"""The one-time cost of a shift said before it is paid: how many corrupted copies of the test split
are made, about how large they are on disk and where, and the command that deletes them; said once,
by the run that makes them, from ``labelemb shift`` and after ``labelemb train`` alike."""

from __future__ import annotations

import logging
import re

import pytest
from helpers.predict_helpers import train_digits_run

from labelemb.cli import main
from labelemb.data import load as load_data
from labelemb.data.caches import format_size
from labelemb.evaluation.shift import shift_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """This test's own cache root: the copies are made here, never in the user's."""
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_copies_to_make_are_counted_sized_and_placed_before_they_are_made(small_config, cache, caplog):
    run_dir, _ = train_digits_run(small_config)
    test = load_data("digits").test.inputs
    with caplog.at_level(logging.INFO, logger="labelemb.evaluation.shift"):
        shift_run(run_dir, corruptions=["rotate@1", "rotate@2"])
    size = 2 * test.numel() * 4  # float32
    assert (
        f"shifting {run_dir}: making 2 corrupted copies of the test split, kept for later runs of this data: "
        f"about {format_size(size)} in {cache / 'corrupted'} (labelemb cache clear corrupted deletes them)"
    ) in caplog.messages
    made = sum(path.stat().st_size for path in (cache / "corrupted").glob("*.safetensors"))
    assert size < made < size + 2 * 1024  # as said: each file's header is a few hundred bytes
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="labelemb.evaluation.shift"):
        shift_run(run_dir, corruptions=["rotate@1", "rotate@2"], refresh=True)  # read from the cache
        assert not any("corrupted cop" in message for message in caplog.messages)
        shift_run(run_dir, corruptions=["rotate@1", "rotate@3"])
    one = format_size(test.numel() * 4)
    assert [m for m in caplog.messages if "making" in m] == [
        f"shifting {run_dir}: making 1 corrupted copy of the test split, kept for later runs of this data: "
        f"about {one} in {cache / 'corrupted'} (labelemb cache clear corrupted deletes them)"
    ]


def test_train_says_it_in_its_progress_off_a_terminal_for_the_run_that_makes_them(tmp_path, cache, capsys):
    args = ["train", "--output-dir", str(tmp_path), "--seeds", "0,1", "model.hidden=[16]", "train.epochs=1"]
    assert main([*args, "experiment=exp", "ood=[]", "shift=[rotate@all]", "--no-progress"]) == 0
    lines = capsys.readouterr().err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scoring under shift:"))
    making = [line for line in lines if "corrupted cop" in line and "making" in line]
    assert len(making) == 1 and lines.index(making[0]) > start  # the first seed makes them, the second reads
    assert re.search(rf"making 5 corrupted copies .* in {re.escape(str(cache / 'corrupted'))} ", making[0])
    assert making[0].endswith("(labelemb cache clear corrupted deletes them)")
