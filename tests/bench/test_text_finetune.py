"""bench/text_finetune.py: its arithmetic (the checks a run makes, the epoch, the comparison's hours
and the verdict), and a tiny run on the CPU that writes every figure and leaves no folder behind.

The tiny run fine-tunes the real all-MiniLM-L6-v2 (the ``text`` extra's wheel, loaded offline) on
texts of at most 16 word pieces: without the wheel it FAILS, as the sentence encoder's own tests do.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import math
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from helpers.repo_paths import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``bench/text_finetune.py`` loaded as a module."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_text_finetune", ROOT / "bench" / "text_finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checks_per_run_counts_the_crossings_and_the_end(script):
    # debian-sections: 48,958 texts x 10 epochs cross 12,500 39 times, and the end is a check of its own.
    assert script.checks_per_run(48_958, 10, 12_500) == 39 + 1
    assert script.checks_per_run(100, 3, 50) == 6  # the last crossing is the end: no extra check
    assert script.checks_per_run(100, 3, None) == 3  # each epoch's end


def test_estimate_scales_the_median_step_to_the_comparison(script):
    figures = script.estimate(
        {"onehot": 2.0, "label_embedding": 4.0},
        train_texts=1_000,
        batch_size=128,
        epochs=10,
        seeds=3,
        checks=5,
        check_texts=400,
        eval_texts_per_second=20.0,
        budget_hours=2.0,
    )
    steps = 8  # 7 full batches of 128 and one of 104
    assert figures["steps_per_epoch"] == steps
    assert figures["methods"]["onehot"]["seconds_per_epoch"] == 2.0 * steps
    assert figures["methods"]["label_embedding"]["hours_per_run"] == pytest.approx(4.0 * steps * 10 / 3600)
    training = 3 * (2.0 + 4.0) * steps * 10 / 3600
    checking = 3 * 2 * 5 * 400 / 20.0 / 3600
    assert figures["comparison_training_hours"] == pytest.approx(training)
    assert figures["comparison_check_hours"] == pytest.approx(checking)
    assert figures["comparison_hours"] == pytest.approx(training + checking)
    assert figures["fits"] is (training + checking <= 2.0)
    tight = script.estimate(
        {"onehot": 2.0},
        train_texts=1_000,
        batch_size=128,
        epochs=10,
        seeds=3,
        checks=5,
        check_texts=400,
        eval_texts_per_second=20.0,
        budget_hours=0.1,
    )
    assert tight["comparison_hours"] > 0.1 and tight["fits"] is False


def write_sections(folder: Path) -> None:
    """A tiny debian-sections/ (three sections, 16 training texts each), laid out as the real one."""
    words = {
        "admin": "server daemon log monitor config",
        "games": "play level puzzle arcade board",
        "libs": "library shared runtime module binding",
    }
    (folder / "debian-sections").mkdir(parents=True)
    for split, count in (("train", 16), ("validation", 4), ("test", 4)):
        with gzip.open(folder / "debian-sections" / f"{split}.csv.gz", "wt", newline="") as file:
            table = csv.writer(file)
            table.writerow(["text", "label"])
            for i in range(count):
                for label, vocabulary in words.items():
                    terms = vocabulary.split()
                    text = " ".join([terms[i % 5], terms[(i + 2) % 5]] + ["package"] * (i % 7))
                    table.writerow([text, label])


def test_a_tiny_run_writes_every_figure(script, tmp_path, monkeypatch, capsys):
    write_sections(tmp_path / "data")
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "text-finetune.json"
    script.main(
        ["--device", "cpu", "--methods", "onehot", "label_embedding", "--rounds", "2", "--steps", "1"]
        + ["--frozen-batches", "1", "--frozen-steps", "2", "--data-dir", str(tmp_path / "data")]
        + ["--out", str(out), "train.batch_size=16", "data.text.max_text_tokens=8", "train.epochs=2"]
    )
    record = json.loads(out.read_text(encoding="utf-8"))
    assert (record["train_texts"], record["check_texts"], record["batch_size"]) == (48, 24, 16)
    assert record["encoder_lr"] == 2e-5 and record["train_lr"] == 1e-4  # the config's head rate
    fine, frozen = record["fine_tuned"], record["frozen"]
    for part in (fine, frozen):
        assert list(part["methods"]) == ["onehot", "label_embedding"]
        assert part["steps_per_epoch"] == 3 and part["epochs"] == 2 and part["seeds"] == 3
        for method, figures in part["methods"].items():
            rounds = part["rounds"][method]
            assert len(rounds) == 2 and all(seconds > 0 for seconds in rounds)
            assert figures["seconds_per_step"] == pytest.approx(sum(rounds) / 2)  # the median of two
            assert figures["seconds_per_epoch"] == pytest.approx(3 * figures["seconds_per_step"])
    # 48 texts x 2 epochs never reach the config's eval_every (12,500): the one check is the end's.
    assert fine["checks_per_run"] == 1 and frozen["checks_per_run"] == 0
    check_hours = 24 / record["eval_texts_per_second"] / 3600
    assert fine["check_hours_per_run"] == pytest.approx(check_hours)
    assert fine["comparison_check_hours"] == pytest.approx(3 * 2 * check_hours)
    assert len(fine["batch_widths"]) == 2 and all(3 <= width <= 8 for width in fine["batch_widths"])
    assert frozen["texts"] == 16
    assert frozen["eval_texts_per_second"] == pytest.approx(16 / frozen["feature_seconds"])
    assert record["frozen_feature_hours"] == pytest.approx((48 + 24) / record["eval_texts_per_second"] / 3600)
    assert set(record["load_average"]) == {"before", "after"}
    assert not math.isnan(record["load_average"]["before"])
    shown = capsys.readouterr().out
    assert "| onehot |" in shown and "| label_embedding |" in shown
    assert "in 2 h" in shown and ("does not fit" in shown) is (not fine["fits"])
    left = list(temporary.glob("labelemb-bench-*"))  # torch's own caches may stay
    assert not left, f"the runs' or the features' temporary folders are left: {left}"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--rounds", "0"], "--rounds must be at least 1, got 0"),
        (["--frozen-batches", "0"], "--frozen-batches must be at least 1, got 0"),
    ],
)
def test_bad_options_are_one_line(script, capsys, options, said):
    with pytest.raises(SystemExit) as stopped:
        script.parse(options)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(said)
