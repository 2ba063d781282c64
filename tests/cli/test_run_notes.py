"""What a run tells its user: the data's own error before the folder's, a resume said in one line,
a warning when a classifier never beats chance, and a finished folder without a stray lock file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from labelemb.cli import main
from labelemb.data import DataError
from labelemb.rundir import LOCK_FILE
from labelemb.training import build_config, train
from labelemb.training.results import at_chance

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {"a": "apple banana cherry", "b": "dog eagle fox", "c": "green blue red"}


def write_table(path: Path, repeat: int = 10, drop_label_of_row: int | None = None) -> Path:
    rows = [(f"{text} {i}", label) for i in range(repeat) for label, text in WORDS.items()]
    lines = [f'"{text}",{"" if n == drop_label_of_row else label}\n' for n, (text, label) in enumerate(rows)]
    path.write_text("text,label\n" + "".join(lines), encoding="utf-8")
    return path


def files_config(folder: Path, train_file: str = "train.csv") -> dict:
    return {
        "experiment": "mine",
        "output_dir": str(folder / "runs"),
        "data": {
            "name": "files",
            "dir": str(folder),
            "files": {
                "format": "csv",
                "train": train_file,
                "test": "test.csv",
                "cache_dir": str(folder / "cache"),
            },
        },
        "model": {"name": "bag_of_words"},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 4, "progress": False},
    }


# ------------------------------------------------------------------ the data's error first


def test_a_mistyped_train_file_is_named_even_where_the_experiment_has_a_run(tmp_path, capsys):
    write_table(tmp_path / "train.csv")
    write_table(tmp_path / "test.csv", repeat=2)
    train(build_config(files_config(tmp_path)))
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(yaml.safe_dump(files_config(tmp_path, train_file="trian.csv")))
    capsys.readouterr()
    code = main(["train", "--config", str(config_file), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "trian.csv" in err[0] and "different config" not in err[0], err


def test_a_broken_new_file_is_named_by_its_line_not_as_other_data(tmp_path):
    write_table(tmp_path / "train.csv")
    write_table(tmp_path / "test.csv", repeat=2)
    train(build_config(files_config(tmp_path)))
    # Another file under the same experiment (the config differs), then the same file edited
    # (a finished run on other data): both are the file's own mistake.
    write_table(tmp_path / "train2.csv", drop_label_of_row=1)
    with pytest.raises(DataError, match=r"train2\.csv, line 3: the label is missing"):
        train(build_config(files_config(tmp_path, train_file="train2.csv")))
    write_table(tmp_path / "train.csv", drop_label_of_row=1)
    with pytest.raises(DataError, match=r"train\.csv, line 3: the label is missing"):
        train(build_config(files_config(tmp_path)))


# ------------------------------------------------------------------ resuming, locks


class Interrupted(Exception):
    pass


def test_a_resumed_run_says_so_in_one_line(small_config, digits, caplog):
    config = small_config(seed=1)

    def crash(progress) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        train(config, dataset=digits, on_checkpoint=crash)
    with caplog.at_level(logging.INFO, logger="labelemb"):
        train(config, dataset=digits)
    said = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert said == [f"{config.run_dir()}: resuming from its checkpoint at step 12 (epoch 1, batch 0)"]


def test_a_fresh_run_says_nothing_of_resuming(small_config, digits, caplog):
    with caplog.at_level(logging.INFO, logger="labelemb"):
        train(small_config(seed=2), dataset=digits)
    assert not [r for r in caplog.records if "resuming" in r.getMessage()]


def test_a_finished_run_folder_keeps_no_lock_file(small_config, digits):
    config = small_config()
    train(config, dataset=digits)
    assert not (config.run_dir() / LOCK_FILE).exists()
    train(config, dataset=digits)  # read back: claims nothing, leaves nothing
    assert not (config.run_dir() / LOCK_FILE).exists()


# ------------------------------------------------------------------ chance level


def test_chance_is_every_check_of_every_split_within_two_standard_errors_of_the_majority():
    levels, counts = {"dev_error": 66.67, "test_error": 60.0}, {"dev_error": 300, "test_error": 300}
    stuck = [{"dev_error": 66.67, "test_error": 61.0}] * 3
    assert at_chance(stuck, levels, counts)
    # 2 standard errors of a proportion 0.6667 at n = 300: 5.44 points.
    assert at_chance([*stuck, {"dev_error": 61.3, "test_error": 61.0}], levels, counts)
    assert not at_chance([*stuck, {"dev_error": 61.2, "test_error": 61.0}], levels, counts)
    assert not at_chance(stuck[:2], levels, counts)  # too few checks to say
    assert not at_chance(stuck, {"dev_error": 0.0}, counts)  # one class: no chance level


def test_a_run_that_never_beats_chance_warns_once_naming_the_method(small_config, digits, caplog):
    with caplog.at_level(logging.WARNING, logger="labelemb"):
        train(small_config("train.lr=1e-9", "train.epochs=3", "method.name=onehot"), dataset=digits)
    said = [r.getMessage() for r in caplog.records if "never beat chance" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("onehot (seed 0) never beat chance"), said
    assert "train.lr" in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labelemb"):
        train(small_config("train.epochs=3", "method.name=onehot", experiment="learns"), dataset=digits)
    assert not [r for r in caplog.records if "never beat chance" in r.getMessage()]
