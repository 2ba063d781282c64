"""train.continue_from: a finished run continued to a higher ceiling is the run trained there
from scratch, check for check; what would make it another run is refused with the reason."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from labelemb.assembly.plan import method_of, plan_run
from labelemb.rundir import RunDirError
from labelemb.training import train
from labelemb.training.continuation import ceiling_set_method_settings, continue_runs
from labelemb.training.distributed import Processes

pytestmark = pytest.mark.usefixtures("one_thread")

#: What differs between two runs of the same updates: the clock.
CLOCK_KEYS = {"train_seconds", "wall_seconds", "seconds"}


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_clock(records):
    return [{k: v for k, v in r.items() if k not in CLOCK_KEYS} for r in records]


def short_and_continued(small_config, tmp_path, *overrides, epochs=4):
    """A finished 2-epoch run, and the config of its continuation to ``epochs`` epochs."""
    short = small_config(*overrides, experiment="short", output_dir=tmp_path)
    train(short)
    longer = small_config(
        *overrides,
        f"train.epochs={epochs}",
        f"train.continue_from={tmp_path / 'short'}",
        experiment="long",
        output_dir=tmp_path,
    )
    return short, longer


def test_a_continued_run_has_the_records_of_the_run_trained_there_from_scratch(small_config, tmp_path):
    short, continued = short_and_continued(small_config, tmp_path)
    summary = train(continued)
    straight = small_config("train.epochs=4", experiment="straight", output_dir=tmp_path)
    train(straight)
    got, want = read_metrics(continued.run_dir()), read_metrics(straight.run_dir())
    assert len(got) == 4 and [r["step"] for r in got] == [r["step"] for r in want]
    assert without_clock(got) == without_clock(want)
    assert summary["continued_from"] == {"run": str(short.run_dir()), "step": got[1]["step"]}
    assert summary["stopped"]["reason"] == "epochs" and summary["epochs"] == 4
    assert len(read_metrics(short.run_dir())) == 2  # the shorter run is left as it was


def test_a_run_that_stopped_early_is_continued_as_it_stands(small_config, tmp_path):
    plateau = ("train.lr=1e-9", "train.eval_every=300", "train.early_stopping={patience: 2}")
    short, continued = short_and_continued(small_config, tmp_path, *plateau, epochs=20)
    summary = train(continued)
    assert summary["stopped"]["reason"] == "early_stopping"
    assert without_clock(read_metrics(continued.run_dir())) == without_clock(read_metrics(short.run_dir()))


def test_a_started_run_resumes_from_its_own_folder_whatever_continue_from_says(small_config, tmp_path):
    finished = small_config(experiment="short", output_dir=tmp_path)
    first = train(finished)
    again = small_config(
        f"train.continue_from={tmp_path / 'elsewhere'}", experiment="short", output_dir=tmp_path
    )
    assert train(again) == first


def test_a_run_that_differs_in_more_than_the_ceiling_is_refused_by_name(small_config, tmp_path):
    short_and_continued(small_config, tmp_path)
    other = small_config(
        "train.epochs=4",
        "train.lr=0.01",
        f"train.continue_from={tmp_path / 'short'}",
        experiment="x",
        output_dir=tmp_path,
    )
    with pytest.raises(RunDirError, match="differs from this one in train.lr; a run can only be continued"):
        train(other)
    assert not other.run_dir().exists()


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_ceiling_no_higher_is_refused(small_config, tmp_path, epochs):
    _, lower = short_and_continued(small_config, tmp_path, epochs=epochs)
    with pytest.raises(
        RunDirError,
        match=f"was trained to train.epochs=2; continue it to more epochs than that \\(got {epochs}\\)",
    ):
        train(lower)


def test_a_missing_run_to_continue_from_is_named(small_config, tmp_path):
    config = small_config("train.epochs=4", f"train.continue_from={tmp_path / 'none'}", output_dir=tmp_path)
    with pytest.raises(
        RunDirError, match=r"none/label_embedding/seed0 holds no finished run of label_embedding seed 0"
    ):
        train(config)


def test_a_method_whose_settings_follow_the_ceiling_is_refused(small_config, tmp_path, digits):
    lwr = {"name": "lwr"}
    short = small_config(method=lwr, experiment="short", output_dir=tmp_path)
    train(short, dataset=digits)
    longer = small_config(
        "train.epochs=4",
        f"train.continue_from={tmp_path / 'short'}",
        method=lwr,
        experiment="long",
        output_dir=tmp_path,
    )
    with pytest.raises(RunDirError, match="lwr's epochs follow from train.epochs"):
        train(longer, dataset=digits)
    assert not (longer.run_dir() / "checkpoint.pt").exists()


def test_which_method_settings_follow_the_ceiling(small_config, digits):
    def moved(*options):
        shorter, longer = small_config(*options), small_config(*options, "train.epochs=4")
        return ceiling_set_method_settings(method_of(shorter), method_of(longer), digits)

    assert moved() == []  # the released label embedding has no warm-up
    assert moved("variant=nlp", "soft_warmup=10") == []  # a warm-up in updates
    assert moved("variant=nlp", "soft_warmup=0.5") == ["soft_warmup"]  # a fraction of training
    assert moved("variant=nlp", "soft_warmup=0.5", "total_updates=30") == []  # given outright


def test_the_data_step_copies_each_continued_run_and_records_the_data_of_every_run(
    small_config, tmp_path, digits
):
    _, continued = short_and_continued(small_config, tmp_path)
    fresh = small_config(experiment="fresh", output_dir=tmp_path)
    plans = [plan_run(continued), plan_run(fresh)]
    dataset = replace(digits, details={"fingerprint": "f00d"})
    continue_runs(plans, dataset, Processes(rank=1, world_size=1))  # not the main process: nothing
    assert not continued.run_dir().exists() and not fresh.run_dir().exists()
    continue_runs(plans, dataset, Processes())
    assert plans[0].folder.read_checkpoint()["progress"]["continued_from"]["step"] > 0
    assert [plan.folder.recorded_fingerprint() for plan in plans] == ["f00d", "f00d"]


def test_a_run_without_its_kept_checkpoint_keeps_its_weights_but_is_no_start(small_config, tmp_path):
    short, longer = short_and_continued(small_config, tmp_path, "train.keep_checkpoint=false")
    run = short.run_dir()
    assert not (run / "checkpoint.pt").exists()
    assert (run / "model.pt").is_file() and (run / "model.selected.pt").is_file()
    dropped = "with its checkpoint \\(a run trained with train.keep_checkpoint=false"
    with pytest.raises(RunDirError, match=dropped):
        train(longer)
    kept, _ = short_and_continued(small_config, tmp_path / "kept")
    assert (kept.run_dir() / "checkpoint.pt").is_file()
    assert json.loads((run / "summary.json").read_text())["steps"] > 0
