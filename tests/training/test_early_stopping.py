"""Early stopping (train.early_stopping): the counter by hand, a plateauing run stops, a killed run
resumes with its counter, and the summary says why and where a run stopped."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from labelemb.config import ConfigError
from labelemb.data import Dataset
from labelemb.training import train
from labelemb.training.batched import unsupported_reason
from labelemb.training.early_stopping import update_patience

pytestmark = pytest.mark.usefixtures("one_thread")


class Crash(Exception):
    """Raised from on_checkpoint to stop a run the way a kill would."""


def counter() -> SimpleNamespace:
    return SimpleNamespace(best_selection=None, checks_without_improvement=0, stopped=None)


def feed(values, lower_is_better, patience, min_delta):
    """The check at which a run with these metric values stops (1-based), or None."""
    progress = counter()
    for check, value in enumerate(values, 1):
        record = {"step": check * 10, "epoch": check / 2, "metric": value}
        if update_patience(progress, record, "metric", lower_is_better, patience, min_delta):
            return check, progress
    return None, progress


def test_the_counter_by_hand_for_an_error():
    # best 5.0 at check 2; 4.95 is not better by more than 0.1; 4.8 is (counter resets); then 3 flat.
    check, progress = feed([6.0, 5.0, 4.95, 5.2, 4.8, 4.8, 4.85, 4.75], True, 3, 0.1)
    assert check == 8 and progress.best_selection == 4.8
    assert progress.stopped == {
        "reason": "early_stopping",
        "step": 80,
        "epoch": 4.0,
        "detail": "metric did not improve on 4.8 by more than 0.1 in 3 checks",
    }
    assert feed([6.0, 5.0, 4.95, 5.2, 4.8, 4.8, 4.85, 4.75], True, 4, 0.1)[0] is None


def test_the_counter_by_hand_for_a_score_where_higher_is_better():
    check, progress = feed([10.0, 12.0, 12.0, 11.0], False, 2, 0.0)
    assert check == 4 and progress.best_selection == 12.0
    assert feed([10.0, 12.0, 12.5, 11.0], False, 2, 0.0)[0] is None
    assert feed([10.0, 12.0, 12.5, 11.0], False, 2, 1.0)[0] == 4  # +0.5 is not more than 1.0


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def plateau_config(small_config, *overrides, **top_level):
    """A digits run whose dev error cannot move (learning rate 1e-9): it must stop at check 3."""
    return small_config(
        "train.lr=1e-9",
        "train.epochs=20",
        "train.eval_every=300",
        "train.early_stopping={patience: 2}",
        *overrides,
        **top_level,
    )


def test_a_run_that_plateaus_stops_and_says_why(small_config, digits):
    config = plateau_config(small_config)
    summary = train(config, dataset=digits)
    records = read_metrics(config.run_dir())
    assert len(records) == 3  # the first check sets the best; two without improvement stop it
    assert summary["stopped"]["reason"] == "early_stopping"
    assert summary["stopped"]["step"] == records[-1]["step"] == summary["steps"]
    assert summary["epochs_trained"] < 2 and summary["epochs"] == 20
    assert "dev_error did not improve" in summary["stopped"]["detail"]


def test_a_run_without_it_says_it_ran_its_epochs_or_steps(small_config, digits, tmp_path):
    summary = train(small_config(), dataset=digits)
    assert summary["stopped"] == {"reason": "epochs", "step": summary["steps"], "epoch": 2.0}
    capped = train(small_config("train.max_steps=5", output_dir=tmp_path / "capped"), dataset=digits)
    assert capped["stopped"]["reason"] == "max_steps" and capped["stopped"]["step"] == 5


def test_a_killed_run_resumes_with_its_counter(small_config, digits, tmp_path):
    patience = "train.early_stopping={patience: 3}"
    whole = plateau_config(small_config, patience, output_dir=tmp_path / "whole")
    train(whole, dataset=digits)
    killed = plateau_config(small_config, patience, output_dir=tmp_path / "killed")

    def crash_at_second_check(progress):
        if len(progress.records) == 2:
            raise Crash

    with pytest.raises(Crash):
        train(killed, dataset=digits, on_checkpoint=crash_at_second_check)
    assert len(read_metrics(killed.run_dir())) == 2
    summary = train(killed, dataset=digits)
    want, got = read_metrics(whole.run_dir()), read_metrics(killed.run_dir())
    assert [r["step"] for r in got] == [r["step"] for r in want] and len(got) == 4
    assert summary["stopped"]["step"] == want[-1]["step"]


def test_a_stopped_run_that_is_resumed_trains_no_further(small_config, digits):
    config = plateau_config(small_config)

    def crash_after_the_stop(progress):
        if progress.stopped is not None:
            raise Crash  # killed after the stop's checkpoint, before the summary was written

    with pytest.raises(Crash):
        train(config, dataset=digits, on_checkpoint=crash_after_the_stop)
    summary = train(config, dataset=digits)
    assert summary["stopped"]["reason"] == "early_stopping" and len(read_metrics(config.run_dir())) == 3


def test_early_stopping_needs_a_dev_split(small_config, digits):
    no_dev = Dataset("digits", digits.train, None, digits.test, digits.class_names)
    with pytest.raises(ConfigError, match="has no dev split"):
        train(plateau_config(small_config), dataset=no_dev)


def test_batched_seeds_say_why_they_run_one_by_one(small_config, digits):
    configs = [plateau_config(small_config, seed=s) for s in (0, 1)]
    assert "stops each seed at its own check" in unsupported_reason(configs[0])
    summaries = train(configs, dataset=digits, progress=False)
    assert [s["stopped"]["reason"] for s in summaries] == ["early_stopping", "early_stopping"]
    assert all("batched_seeds" not in s for s in summaries)


def test_a_misspelt_key_is_named(small_config):
    with pytest.raises(ConfigError, match="train.early_stopping.patince' does not exist; did you mean"):
        small_config("train.early_stopping={patince: 2}")
