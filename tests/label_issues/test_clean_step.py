"""The ``clean:`` step of a comparison (issue 101, part 6): ``labelemb compare`` makes the list of
wrong labels itself (2-fold cross-fitting of onehot on the digits demo with 30 % of its training
labels flipped on purpose, 1 epoch), keeps it in the experiment's folder, and trains every method
on the rows it keeps. The list is the one ``find_label_issues`` makes with the same options; the
runs train on exactly the rows it does not flag; a second compare (and ``train``) reads it back
without training a fold; changed noise makes a new list; ``relabel`` reads the same list; and the
mistakes are refused in one line before anything trains."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labelemb
from labelemb.assembly import data_of
from labelemb.cli import main
from labelemb.config import ConfigError
from labelemb.experiment.setting import typed_config
from labelemb.label_issues import LabelIssuesError, clean_step, cross_fit
from labelemb.label_issues.listing import LIST_CSV
from labelemb.steps import STEPS

pytestmark = pytest.mark.usefixtures("one_thread")

NOISE = {"kind": "symmetric", "rate": 0.3}


def settings(output: Path, **changes: Any) -> dict[str, Any]:
    """The demo with flipped labels and the clean: step, tiny: 1 epoch, 2 folds."""
    return {
        "output_dir": str(output),
        "experiment": "cleaned",
        "train": {"epochs": 1},
        "noise": NOISE,
        "clean": {"folds": 2},
        **changes,
    }


def list_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def no_training(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a fold run trained: the list was not read back")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A comparison of onehot with the step, and the list's folder it names."""
    output = tmp_path_factory.mktemp("clean-step")
    comparison = labelemb.compare(
        None, methods=["onehot"], seeds=[0], reference=False, progress=False, **settings(output)
    )
    summary = json.loads((output / "cleaned" / "onehot" / "seed0" / "summary.json").read_text())
    return output, comparison, summary


def test_the_step_is_registered_at_the_front_door():
    assert "clean" in STEPS


def test_the_list_is_the_one_find_label_issues_makes(compared, tmp_path):
    output, _, summary = compared
    made = Path(summary["data"]["clean"]["issues"])
    # In the experiment's folder, under its key, as the search of that method and folds names it.
    assert made.parent.parent.parent.parent == output / "cleaned"
    assert made.parent.parent.parent.name.startswith("clean-")
    assert made.parent.name == "onehot-k2-seed0"
    direct = labelemb.find_label_issues(
        None,
        folds=2,
        method="onehot",
        rank_by="self_confidence",
        filter_by="prune_by_noise_rate",
        progress=False,
        output_dir=str(tmp_path),
        experiment="direct",
        train={"epochs": 1},
        noise=NOISE,
    )
    assert list_rows(made) == list_rows(direct.folder / LIST_CSV)


def test_the_runs_train_on_the_rows_the_list_keeps(compared):
    _, _, summary = compared
    record = summary["data"]["clean"]
    rows = list_rows(Path(record["issues"]))
    flagged = np.array([row["flagged"] == "True" for row in rows])
    wrong = np.array([row["wrong"] == "True" for row in rows])
    assert 0 < flagged.sum() < len(rows)
    assert (record["rows"], record["flagged"], record["removed"]) == (len(rows), flagged.sum(), flagged.sum())
    # The wrong labels left are those of the rows the list did not flag: those rows, no others.
    assert record["wrong_before"] == wrong.sum()
    assert record["wrong_after"] == (wrong & ~flagged).sum()


def test_one_epoch_saw_each_kept_row_once(compared):
    output, _, summary = compared
    kept = summary["data"]["clean"]["rows"] - summary["data"]["clean"]["removed"]
    metrics = (output / "cleaned" / "onehot" / "seed0" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["examples"] == kept


def test_a_second_compare_and_train_read_the_list_back(compared, monkeypatch, capsys):
    output, first, summary = compared
    monkeypatch.setattr(clean_step, "find_label_issues", no_training)
    monkeypatch.setattr(cross_fit, "train", no_training)
    again = labelemb.compare(None, methods=["onehot"], seeds=[0], reference=False, **settings(output))
    assert again.to_markdown() == first.to_markdown()
    said = capsys.readouterr().err
    assert "clean: the list of wrong labels is read back from" in said
    record = summary["data"]["clean"]
    kept = record["rows"] - record["removed"]
    assert f"clean: {record['removed']} of {record['rows']:,} training rows flagged by" in said
    assert f"every run trains on the {kept} rows left (action: remove)" in said
    # train reads the finished run back: its config is the cleaned one, as compare's was.
    trained = labelemb.train(None, progress=False, **settings(output))
    assert trained.summaries[0]["data"]["clean"] == record


def test_an_experiment_folder_moved_elsewhere_is_read_back(compared, tmp_path, monkeypatch):
    """The runs' config names the list by where it lay when they trained; the folder moved (another
    output_dir), the comparison reads its list and runs back, not refused as runs of another config:
    what makes a run the same is the list's content, which its data digest holds."""
    output, _, _ = compared
    moved = tmp_path / "moved"
    shutil.copytree(output, moved)
    monkeypatch.setattr(clean_step, "find_label_issues", no_training)
    monkeypatch.setattr(cross_fit, "train", no_training)
    summary = moved / "cleaned" / "onehot" / "seed0" / "summary.json"
    written = summary.stat().st_mtime_ns
    again = labelemb.compare(
        None, methods=["onehot"], seeds=[0], reference=False, progress=False, **settings(moved)
    )
    assert not again.failed and again.runs["onehot"] == [summary.parent]
    assert summary.stat().st_mtime_ns == written  # read back, not trained again


def test_the_command_reads_the_list_back_and_says_so(compared, monkeypatch, capsys):
    output, _, _ = compared
    monkeypatch.setattr(clean_step, "find_label_issues", no_training)
    texts = [f"output_dir={output}", "experiment=cleaned", "train.epochs=1", "clean.folds=2"]
    texts += [f"noise.{key}={value}" for key, value in NOISE.items()]
    code = main(["compare", "--methods", "onehot", "--seeds", "0", "--no-progress", "--no-reference", *texts])
    assert code == 0
    said = capsys.readouterr().err
    assert "clean: the list of wrong labels is read back from" in said
    assert "training rows flagged by" in said


def test_relabel_reads_the_same_list_and_keeps_every_row(compared, monkeypatch):
    output, _, summary = compared
    monkeypatch.setattr(clean_step, "find_label_issues", no_training)
    config = clean_step.cleaned_config(
        typed_config(None, settings(output, clean={"folds": 2, "action": "relabel"}))
    )
    assert config.clean is None
    made = summary["data"]["clean"]["issues"]
    assert (config.data.clean.issues, config.data.clean.action) == (made, "relabel")
    dataset = data_of(config).load()
    record = dataset.details["clean"]
    assert len(dataset.train) == record["rows"] and record["relabelled"] > 0


def test_a_changed_noise_setting_makes_a_new_list(compared, monkeypatch):
    output, _, summary = compared
    calls = []
    real = clean_step.find_label_issues

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0].noise)
        return real(*args, **kwargs)

    monkeypatch.setattr(clean_step, "find_label_issues", counted)
    other = {"kind": "symmetric", "rate": 0.2}
    config = clean_step.cleaned_config(
        typed_config(None, {**settings(output, noise=other), "train": {"epochs": 1, "progress": False}})
    )
    assert [noise.rate for noise in calls] == [0.2]
    made, before = Path(config.data.clean.issues), Path(summary["data"]["clean"]["issues"])
    assert made.parent.parent.parent != before.parent.parent.parent
    assert list_rows(made) != list_rows(before) and list_rows(before)  # the first list is kept


@pytest.mark.parametrize(
    ("clean", "data", "message"),
    [
        ({"rank_by": "self_confidenc"}, {}, "clean.rank_by: unknown detector 'self_confidenc'; did you mean"),
        ({"rank_by": "aum"}, {}, "add clean.dynamics: true"),
        ({"filter": "prune_by_nois_rate"}, {}, "clean.filter: unknown filter"),
        ({"method": "onehott"}, {}, "clean.method: unknown method 'onehott'; did you mean 'onehot'?"),
        ({}, {"clean": {"issues": "label_issues.csv"}}, "give one of them"),
    ],
)
def test_mistakes_are_one_line_before_anything_trains(tmp_path, monkeypatch, clean, data, message):
    monkeypatch.setattr(cross_fit, "train", no_training)
    config = settings(tmp_path, clean={"folds": 2, **clean}, **({"data": data} if data else {}))
    with pytest.raises((LabelIssuesError, ConfigError)) as refused:
        labelemb.compare(None, methods=["onehot"], seeds=[0], progress=False, **config)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "cleaned").exists()


def test_a_tag_set_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(cross_fit, "train", no_training)
    for split in ("train", "dev", "test"):
        lines = ["text,tags"] + [f"word{i} thing,{'a b' if i % 2 else 'b'}" for i in range(12)]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = {split: f"{split}.csv" for split in ("train", "dev", "test")}
    files = {"format": "csv", "tags_column": "tags", **splits}
    config = {
        "output_dir": str(tmp_path / "runs"),
        "experiment": "tags",
        "data": {"name": "files", "dir": str(tmp_path), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 4},
        "train": {"epochs": 1, "progress": False},
        "clean": {"folds": 2},
    }
    with pytest.raises(LabelIssuesError, match="gives each row a set of tags: drop clean:") as refused:
        labelemb.compare(config, methods=["onehot"], seeds=[0], progress=False)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "runs" / "tags" / "onehot").exists()


def test_the_step_s_defaults_are_label_issues_own():
    from labelemb.config import CleanStep
    from labelemb.label_issues.detectors import DEFAULT_DETECTOR, DEFAULT_FILTER
    from labelemb.label_issues.folds import DEFAULT_FOLDS

    step = CleanStep()
    assert (step.rank_by, step.filter, step.folds) == (DEFAULT_DETECTOR, DEFAULT_FILTER, DEFAULT_FOLDS)


def test_tune_trains_its_trials_on_the_cleaned_data(compared, monkeypatch):
    """labelemb.tune takes the step too (it once trained every trial on every row): the list is
    the comparison's, read back, and the tuned base config names it."""
    output, _, summary = compared
    monkeypatch.setattr(clean_step, "find_label_issues", no_training)
    built = []

    def caught(setting: Any) -> None:
        built.append(setting)
        raise KeyboardInterrupt  # stop before any trial trains

    monkeypatch.setattr("labelemb.experiment.tune_methods.check_setting", caught)
    with pytest.raises(KeyboardInterrupt):
        labelemb.tune(None, methods=["onehot"], trials=1, seeds=[1], progress=False, **settings(output))
    base = built[0].base
    assert base.clean is None
    assert str(base.data.clean.issues) == summary["data"]["clean"]["issues"]
