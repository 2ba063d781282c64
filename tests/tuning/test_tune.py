"""`labelemb tune` (labelemb.tuning): the same budget of Optuna trials for every method, a study
that resumes, the best settings on fresh seeds, and one-line errors before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
from helpers.repo_paths import CONFIGS, DOCS

from labelemb.analysis.tuning import read_tuning
from labelemb.cli import main
from labelemb.experiment import base_config
from labelemb.tasks import dev_objective
from labelemb.tasks.classification import Classification
from labelemb.tasks.seq2seq import SequenceTask
from labelemb.tasks.text_classification import TextClassification
from labelemb.training import load_config
from labelemb.tuning import (
    JOURNAL_FILE,
    TuneSetting,
    open_storage,
    run_number,
    sampler_seed,
    trial_config,
)
from labelemb.tuning.trial import Pruning

#: Digits, 2 epochs, 2 checks an epoch: a trial is a second or two.
QUICK = ["train.epochs=2", "train.eval_every=600", "--no-progress"]

#: The experiment of tune without --config: the demo's own setting.
EXPERIMENT = "demo-digits-mlp"


def run(args):
    """The command's exit code, argparse's refusals (exit 2) included."""
    try:
        return main(args)
    except SystemExit as stop:
        return stop.code


def tune(tmp_path, *extra, methods="onehot,label_smoothing", trials=3, seeds="1-2"):
    args = ["tune", "--methods", methods, "--trials", str(trials), "--seeds", seeds]
    return main([*args, "--output-dir", str(tmp_path), *QUICK, *extra])


def trials_of(tmp_path, method, experiment=EXPERIMENT):
    storage = open_storage(str(tmp_path / experiment / "tuning" / JOURNAL_FILE))
    return optuna.load_study(study_name=f"{experiment}:{method}", storage=storage).get_trials()


# ---------------------------------------------------------------------------- one line, nothing written


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--space", "epsilom=0:0.2"], "did you mean 'epsilon'?"),
        (
            ["--space", "train.lrr=1e-4:1e-2:log"],
            "config key 'train.lrr' does not exist; did you mean 'train.lr'?",
        ),
        (["--space", "epsilon=0.0:2.0"], "does not accept epsilon=2.0"),
        (["--space", "epsilon=0.1:0.1"], "the range 0.1:0.1 is empty"),
        (["--space", "epsilon=0.3:0.1"], "the range is inverted (low 0.3 > high 0.1); write it as 0.1:0.3"),
        (["--space", "train.lr=0:1e-2:log"], "a log range needs low > 0"),
        (["--trials", "0"], "'0' is not a positive whole number"),
        (["--space", "train.batch_size=0:64"], "the config does not accept train.batch_size=0"),
        (["--seeds", "0-2"], "holds the tuning seed 0"),
        (
            ["--storage", "sqlite:////no/such/folder/tune.db"],
            "--storage sqlite:////no/such/folder/tune.db does not answer",
        ),
        (["--storage", "postgresql://me:secret@127.0.0.1:1/db"], "needs its database's Python driver"),
    ],
)
def test_bad_input_is_one_line_before_anything_is_written(tmp_path, capsys, extra, expected):
    code = run(
        ["tune", "--methods", "onehot,label_smoothing", "--output-dir", str(tmp_path / "out"), *QUICK, *extra]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    assert "secret" not in err  # a password in a URL is never printed
    assert not (tmp_path / "out").exists()


def test_a_bare_key_no_method_has_is_refused_with_a_guess(tmp_path, capsys):
    code = main(
        [
            "tune",
            "--methods",
            "onehot,label_embedding",
            "--space",
            "alpah=0.5:0.9",
            "--output-dir",
            str(tmp_path),
            *QUICK,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'alpha'?" in err and len(err.strip().splitlines()) == 1


def test_a_bare_key_applies_to_the_methods_that_have_it(tmp_path):
    base = load_config(None, ["train.epochs=1"])
    setting = TuneSetting(base, ["onehot", "label_embedding"], trials=1, spaces={})
    from labelemb.search_spaces import parse_space

    setting.spaces = dict([parse_space("alpha=0.6:0.8"), parse_space("train.lr=1e-3:1e-2:log")])
    assert set(setting.space("onehot")) == {"train.lr"}
    assert set(setting.space("label_embedding")) == {"tau", "alpha", "train.lr"}
    assert (
        str(setting.space("label_embedding")["alpha"]) == "0.6:0.8"
    )  # the command line's replaces the method's


# ---------------------------------------------------------------------------- a tuned comparison


def test_every_method_gets_its_trials_then_its_best_setting_trains_on_fresh_seeds(tmp_path, capsys):
    assert tune(tmp_path, "--space", "train.lr=1e-3:1e-2:log") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    experiment = tmp_path / EXPERIMENT
    record = read_tuning(experiment)
    assert record["objective"] == {"keys": ["dev_error"], "name": "dev error", "higher_is_better": False}
    for method in ("onehot", "label_smoothing"):
        study = record["methods"][method]
        assert [t["state"] for t in study["trials"]] == ["COMPLETE"] * 3
        values = [t["value"] for t in study["trials"]]
        assert study["best_value"] == min(values)
        # Each trial's run is in its own folder, with the values the study holds.
        for t in study["trials"]:
            config = (
                experiment / "tuning" / f"trial{t['number']:03d}" / method / "seed0" / "config.yaml"
            ).read_text()
            assert f"lr: {t['params']['train.lr']!r}" in config
            summary = json.loads(
                (
                    experiment / "tuning" / f"trial{t['number']:03d}" / method / "seed0" / "summary.json"
                ).read_text()
            )
            assert summary["selected_dev_error"] == t["value"]
            run = experiment / "tuning" / f"trial{t['number']:03d}" / method / "seed0"
            assert not (
                run / "checkpoint.pt"
            ).exists()  # a finished trial keeps its numbers, not its optimiser
        # The best setting trains on the fresh seeds, the default one is what compare writes.
        for seed in (1, 2):
            best = experiment / "tuned" / f"trial{study['best_trial']:03d}" / method / f"seed{seed}"
            tuned = json.loads((best / "summary.json").read_text())
            assert tuned["seed"] == seed
            tuned_config = (best / "config.yaml").read_text()
            assert f"lr: {study['best_params']['train.lr']!r}" in tuned_config
            assert (experiment / method / f"seed{seed}" / "summary.json").exists()
        assert not (experiment / method / "seed0").exists()  # the tuning seed is never a fresh one
    table = (experiment / "tuning.md").read_text()
    assert table.strip() in out
    header = table.splitlines()[0]
    assert "default error %" in header and "tuned error %" in header
    assert "p vs tuned onehot" in header and "p vs default" in header
    # Below it, the calibration of the default and tuned settings at the fresh seeds, raw and scaled.
    calibration = table.split("Calibration of the test predictions at the fresh seeds", 1)[1]
    calibration, beyond = calibration.split("Knowing when it is wrong at the fresh seeds", 1)
    rows = [line.strip("|").split("|") for line in calibration.splitlines() if line.startswith("| ")]
    heads = [cell.strip() for cell in rows[0]]
    assert heads[:3] == ["method", "default ECE %", "default ECE % scaled"] and heads[-1] == "tuned T"
    tuned_ece = {row[0].strip(): row[heads.index("tuned ECE % scaled")].strip() for row in rows[1:]}
    for method in ("onehot", "label_smoothing"):
        study = record["methods"][method]
        runs = [
            experiment / "tuned" / f"trial{study['best_trial']:03d}" / method / f"seed{s}" for s in (1, 2)
        ]
        scaled = [json.loads((run / "summary.json").read_text())["selected_test_ece_scaled"] for run in runs]
        assert tuned_ece[method].startswith(f"{sum(scaled) / 2:.2f} ± ")
        # Every fresh run judged beyond its error (evaluation.json): its AURC in the last table.
        aurc = [
            json.loads((run / "evaluation.json").read_text())["test"]["selective_msp_aurc"]  # in percent
            for run in runs
        ]
        row = next(line for line in beyond.splitlines() if line.startswith(f"| {method} |"))
        assert row.split("|")[3].strip().startswith(f"{sum(aurc) / 2:.2f} ± ")  # tuned AURC %
        assert (experiment / method / "seed1" / "evaluation.json").is_file()  # the default setting's too
    assert (experiment / "tuning-history.png").stat().st_size > 1000


def test_a_method_with_nothing_to_search_keeps_its_default(tmp_path, capsys):
    assert tune(tmp_path, trials=2) == 0
    err = capsys.readouterr().err
    assert "onehot: nothing to search" in err
    record = read_tuning(tmp_path / EXPERIMENT)
    assert record["methods"]["onehot"]["trials"] == []
    assert not list((tmp_path / EXPERIMENT).glob("tuned/*/onehot"))
    row = next(
        line
        for line in (tmp_path / EXPERIMENT / "tuning.md").read_text().splitlines()
        if line.startswith("| onehot")
    )
    assert "0 (nothing to search)" in row


def test_the_same_seed_tunes_to_the_same_trials(tmp_path):
    for name in ("a", "b"):
        assert tune(tmp_path / name, methods="label_smoothing") == 0
    first, second = (
        read_tuning(tmp_path / name / EXPERIMENT)["methods"]["label_smoothing"] for name in ("a", "b")
    )
    assert [(t["params"], t["value"]) for t in first["trials"]] == [
        (t["params"], t["value"]) for t in second["trials"]
    ]


def test_the_sampler_seed_depends_on_where_the_study_stands_only():
    assert sampler_seed(0, "ols", 4) == sampler_seed(0, "ols", 4)
    assert (
        len(
            {
                sampler_seed(0, "ols", 4),
                sampler_seed(1, "ols", 4),
                sampler_seed(0, "lwr", 4),
                sampler_seed(0, "ols", 5),
            }
        )
        == 4
    )


# ---------------------------------------------------------------------------- resuming


def test_a_finished_study_is_not_trained_again_and_a_larger_budget_adds_trials(tmp_path):
    assert tune(tmp_path, methods="label_smoothing", trials=2) == 0
    folder = tmp_path / EXPERIMENT / "tuning"
    before = {p: p.stat().st_mtime_ns for p in folder.glob("trial*/*/seed0/summary.json")}
    assert len(before) == 2
    assert tune(tmp_path, methods="label_smoothing", trials=2) == 0
    assert {p: p.stat().st_mtime_ns for p in folder.glob("trial*/*/seed0/summary.json")} == before
    assert tune(tmp_path, methods="label_smoothing", trials=3) == 0
    after = {p: p.stat().st_mtime_ns for p in folder.glob("trial*/*/seed0/summary.json")}
    assert len(after) == 3 and all(after[p] == t for p, t in before.items())
    assert len(trials_of(tmp_path, "label_smoothing")) == 3


def test_a_resumed_study_draws_what_an_uninterrupted_one_draws(tmp_path):
    assert tune(tmp_path / "whole", methods="label_smoothing", trials=3) == 0
    assert tune(tmp_path / "parts", methods="label_smoothing", trials=1) == 0
    assert tune(tmp_path / "parts", methods="label_smoothing", trials=3) == 0
    whole, parts = (
        read_tuning(tmp_path / name / EXPERIMENT)["methods"]["label_smoothing"] for name in ("whole", "parts")
    )
    assert [t["params"] for t in whole["trials"]] == [t["params"] for t in parts["trials"]]


def test_a_trial_a_killed_tune_left_running_is_asked_again_in_its_own_run_folder(tmp_path):
    """A dead driver's running trial is closed as failed and retried with the same values (Optuna's
    retry pattern); the retry trains on in the first attempt's folder, from its checkpoint."""
    base = base_config(None, QUICK[:-1] + [f"output_dir={tmp_path}"])
    setting = TuneSetting(base, ["label_smoothing"], trials=2)
    storage = open_storage(setting.storage_text)
    study = optuna.create_study(
        study_name=f"{EXPERIMENT}:label_smoothing", storage=storage, direction="minimize"
    )
    from labelemb.tuning import setting_record

    study.set_user_attr("setting", setting_record(setting, "label_smoothing"))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    trial = study.ask()
    trial.suggest_float("epsilon", 0.0, 0.3)
    import socket

    trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": int(dead.stdout)})
    # The killed tune had trained its run halfway: one epoch of two, checkpoint on disk.
    half = trial_config(setting, "label_smoothing", trial.params, trial.number)
    from labelemb.training import train

    train(half.model_copy(update={"train": half.train.model_copy(update={"max_steps": 12})}))
    assert tune(tmp_path, methods="label_smoothing", trials=2) == 0
    states = [(t.number, t.state.name, run_number(t)) for t in trials_of(tmp_path, "label_smoothing")]
    assert states[0] == (0, "FAIL", 0)
    assert states[1] == (1, "COMPLETE", 0)  # the retry, in trial 0's folder
    assert trials_of(tmp_path, "label_smoothing")[1].params == trial.params
    assert len([s for s in states if s[1] == "COMPLETE"]) == 2


def test_a_live_process_s_running_trial_holds_its_place_and_is_waited_for(tmp_path, monkeypatch):
    """Another driver's running trial is left to it, and counts for the budget: this driver trains
    the place left and then waits for it, so the table is of the whole budget."""
    import os
    import socket
    import threading
    import time

    import labelemb.tuning.study as tuning

    monkeypatch.setattr(tuning, "WAIT_SECONDS", 0.05)
    base = base_config(None, QUICK[:-1] + [f"output_dir={tmp_path}"])
    setting = TuneSetting(base, ["label_smoothing"], trials=2)
    study = optuna.create_study(
        study_name=f"{EXPERIMENT}:label_smoothing", storage=open_storage(setting.storage_text)
    )
    from labelemb.tuning import setting_record

    study.set_user_attr("setting", setting_record(setting, "label_smoothing"))
    trial = study.ask()
    trial.suggest_float("epsilon", 0.0, 0.3)
    trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid()})

    def the_other_driver_finishes_once_this_one_has_trained() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
                break
            time.sleep(0.05)
        study.tell(trial, 99.0)

    other = threading.Thread(target=the_other_driver_finishes_once_this_one_has_trained)
    other.start()
    assert tune(tmp_path, methods="label_smoothing", trials=2) == 0
    other.join()
    trials = trials_of(tmp_path, "label_smoothing")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["default"] and not (tmp_path / EXPERIMENT / "tuning" / "trial000").exists()
    # The live trial's result is in the record: the driver waited for it.
    recorded = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]["trials"]
    assert recorded[0]["value"] == 99.0


def test_a_study_of_another_setting_is_refused(tmp_path, capsys):
    assert tune(tmp_path, methods="label_smoothing", trials=1) == 0
    capsys.readouterr()
    code = tune(tmp_path, "--space", "epsilon=0.0:0.2", methods="label_smoothing", trials=1)
    err = capsys.readouterr().err
    assert code == 2 and "was tuned with another setting (differs in space.epsilon)" in err


# ---------------------------------------------------------------------------- pruning, storage, objective


def test_pruned_trials_report_every_check_and_count_for_the_budget(tmp_path):
    space = ["--space", "train.lr=1e-5:1e-1:log"]
    assert tune(tmp_path, *space, "--prune", methods="label_smoothing", trials=8, seeds="1") == 0
    trials = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]["trials"]
    assert len(trials) == 8
    assert all(len(t["checks"]) >= 1 for t in trials)  # dev error reported at the checks
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert all(len(t["checks"]) == 4 for t in complete)  # 2 epochs, 2 checks each
    for t in trials:
        if t["state"] == "PRUNED":
            assert not (
                tmp_path
                / EXPERIMENT
                / "tuning"
                / f"trial{t['number']:03d}"
                / "label_smoothing"
                / "seed0"
                / "summary.json"
            ).exists()


def test_pruning_reports_the_selected_check_s_calibration_where_a_check_records_none():
    # With best_dev a classifier records its dev calibration only at checks that can be selected;
    # the trial's objective so far is then the selected check's value, and that is reported.
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    checks = [
        {"dev_error": 9.0, "dev_nll": 0.50},
        {"dev_error": 7.0, "dev_nll": 0.40},
        {"dev_error": 8.0},  # beats no earlier check: no dev calibration recorded
        {"dev_error": 6.0, "dev_nll": 0.45},
    ]
    records: list[dict] = []
    runs = [SimpleNamespace(progress=SimpleNamespace(records=records))]
    by_nll = Pruning(trial, ("dev_nll",), optuna.TrialPruned)
    by_error = Pruning(trial, ("dev_error",), optuna.TrialPruned)
    for check in checks:
        records.append(check)
        by_nll.on_check(runs)
    assert study.trials[0].intermediate_values == {0: 0.50, 1: 0.40, 2: 0.40, 3: 0.45}
    other = study.ask()
    by_error.trial = other
    records.clear()
    for check in checks:
        records.append(check)
        by_error.on_check(runs)
    assert study.trials[1].intermediate_values == {0: 9.0, 1: 7.0, 2: 8.0, 3: 6.0}


def test_a_database_url_holds_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    assert tune(tmp_path / "out", "--storage", url, methods="label_smoothing", trials=2, seeds="1") == 0
    study = optuna.load_study(study_name=f"{EXPERIMENT}:label_smoothing", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert not (tmp_path / "out" / EXPERIMENT / "tuning" / JOURNAL_FILE).exists()


def test_each_task_says_what_tuning_optimises():
    assert dev_objective(Classification) == (("dev_error",), False)
    assert dev_objective(TextClassification) == (("dev_error",), False)
    assert dev_objective(TextClassification, "dev_macro_f1") == (("dev_macro_f1",), True)
    assert dev_objective(SequenceTask) == (("dev_bleu", "dev_rougeL"), True)

    class Opaque:
        @property
        def selection_metric(self):
            return "dev_x"

    with pytest.raises(ValueError, match="give it a classmethod objective"):
        dev_objective(Opaque)


def test_the_report_of_a_tuned_experiment_shows_its_tuning(tmp_path):
    assert tune(tmp_path, "--space", "train.lr=1e-3:1e-2:log", trials=2) == 0
    assert main(["report", str(tmp_path / EXPERIMENT)]) == 0
    page = (tmp_path / EXPERIMENT / "report.html").read_text()
    assert '<section id="tuning">' in page and '<a href="#tuning">tuning</a>' in page
    assert "had 2 trials" in page and "fresh seeds 1, 2" in page
    assert page.count("<table>") >= 2


def test_the_docs_list_each_method_s_declared_space():
    """docs/tuning.md's table of what each method searches is the methods' own declaration."""
    from labelemb import methods

    docs = (DOCS / "tuning.md").read_text()
    rows = {}
    for line in docs.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0] and not cells[0].startswith("-"):
            for name in cells[0].split(", "):
                rows[name] = cells[1]
    for name in methods.available():
        space = methods.search_space(name)
        listed = rows[name]
        if not space:
            assert listed == "nothing of its own", name
        for key, declared in space.items():
            assert f"{key} `{declared}`" in listed, (name, key, listed)


def test_trials_side_by_side_train_stacked_in_one_unit(tmp_path):
    assert tune(tmp_path, "--batched-trials", "3", methods="label_smoothing", trials=3, seeds="1") == 0
    trials = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    assert len({t["params"]["epsilon"] for t in trials}) == 3
    for t in trials:
        run = tmp_path / EXPERIMENT / "tuning" / f"trial{t['number']:03d}" / "label_smoothing" / "seed0"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["batched_seeds"] == 3 and summary["selected_dev_error"] == t["value"]


def test_pruning_and_trials_side_by_side_exclude_each_other(tmp_path, capsys):
    code = tune(tmp_path, "--batched-trials", "2", "--prune", methods="label_smoothing")
    err = capsys.readouterr().err
    assert code == 2 and "use one of them" in err and not (tmp_path / EXPERIMENT).exists()


def test_a_larger_budget_whose_best_is_another_trial_trains_that_setting_beside_the_first(tmp_path):
    """The fresh runs of a best setting live under the trial that found it: a later best writes
    beside them (before, the same folder held a run of another config and tune stopped)."""
    # The default learning rate (0.001) lies below the range: trial 0 trains it clamped to 0.003,
    # which is not the default setting, so its fresh runs are a tuned folder of their own.
    space = ["--space", "train.lr=3e-3:1e-1:log"]
    assert tune(tmp_path, *space, methods="label_smoothing", trials=1, seeds="1") == 0
    assert tune(tmp_path, *space, methods="label_smoothing", trials=6, seeds="1") == 0
    record = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]
    assert record["best_trial"] != 0
    folders = sorted(p.name for p in (tmp_path / EXPERIMENT / "tuned").iterdir())
    assert f"trial{record['best_trial']:03d}" in folders
    assert "trial000" in folders  # the first budget's best, kept
    row = next(
        line
        for line in (tmp_path / EXPERIMENT / "tuning.md").read_text().splitlines()
        if "label_smoothing" in line
    )
    assert f"train.lr {record['best_params']['train.lr']:.3g}" in row


def test_an_edited_data_file_makes_the_study_stale_and_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        f"{word} {i},{label}"
        for i in range(12)
        for word, label in (("alpha beta", "a"), ("gamma delta", "b"))
    ]
    (data / "train.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (data / "test.csv").write_text("text,label\n" + "\n".join(rows[:8]) + "\n")
    config = tmp_path / "my.yaml"
    config.write_text(
        "data:\n  name: files\n  files: {train: data/train.csv, test: data/test.csv, dev_fraction: 0.25}\n"
        "model: {name: bag_of_words}\ntrain: {epochs: 1, batch_size: 8}\n"
    )
    args = ["--config", str(config), "--no-progress"]
    assert tune(tmp_path / "out", *args, methods="label_smoothing", trials=1, seeds="1") == 0
    (data / "train.csv").write_text("text,label\n" + "\n".join(reversed(rows)) + "\n")
    capsys.readouterr()
    code = tune(tmp_path / "out", *args, methods="label_smoothing", trials=2, seeds="1")
    err = capsys.readouterr().err
    assert code == 2 and "was tuned with another setting (differs in data)" in err


# ---------------------------------------------------------------------------- --objective


def test_objective_nll_judges_each_trial_by_its_dev_nll_at_the_selected_check(tmp_path, capsys):
    assert tune(tmp_path, "--objective", "nll", methods="label_smoothing", seeds="1") == 0
    record = read_tuning(tmp_path / EXPERIMENT)
    assert record["objective"] == {"keys": ["dev_nll"], "name": "dev nll", "higher_is_better": False}
    study = record["methods"]["label_smoothing"]
    assert len(study["trials"]) == 3
    for t in study["trials"]:
        run = tmp_path / EXPERIMENT / "tuning" / f"trial{t['number']:03d}" / "label_smoothing" / "seed0"
        summary = json.loads((run / "summary.json").read_text())
        # The check is still the one the dev error selects; the trial's value is its dev NLL there.
        assert t["value"] == summary["selected_dev_nll"] != summary["selected_dev_error"]
    assert study["best_value"] == min(t["value"] for t in study["trials"])
    assert "best dev nll" in capsys.readouterr().out


def test_objective_ece_reads_the_scaled_dev_ece_and_another_objective_is_another_study(tmp_path, capsys):
    assert tune(tmp_path, "--objective", "ece", methods="label_smoothing", trials=1, seeds="1") == 0
    (trial,) = read_tuning(tmp_path / EXPERIMENT)["methods"]["label_smoothing"]["trials"]
    run = tmp_path / EXPERIMENT / "tuning" / "trial000" / "label_smoothing" / "seed0"
    assert trial["value"] == json.loads((run / "summary.json").read_text())["selected_dev_ece_scaled"]
    capsys.readouterr()
    code = tune(tmp_path, methods="label_smoothing", trials=2, seeds="1")
    err = capsys.readouterr().err
    assert code == 2 and "was tuned with another setting (differs in objective)" in err


def test_objective_aurc_judges_each_trial_by_the_dev_aurc_its_selected_check_recorded(tmp_path, capsys):
    from labelemb import load
    from labelemb.data import load as load_data
    from labelemb.metrics import aurc, max_softmax
    from labelemb.metrics.selective import correct_predictions

    assert tune(tmp_path, "--objective", "aurc", methods="label_smoothing", trials=2, seeds="1") == 0
    record = read_tuning(tmp_path / EXPERIMENT)
    assert record["objective"] == {"keys": ["dev_aurc"], "name": "dev aurc", "higher_is_better": False}
    study = record["methods"]["label_smoothing"]
    dev = load_data("digits").dev
    for t in study["trials"]:
        run = tmp_path / EXPERIMENT / "tuning" / f"trial{t['number']:03d}" / "label_smoothing" / "seed0"
        summary = json.loads((run / "summary.json").read_text())
        assert t["value"] == summary["selected_dev_aurc"] != summary["selected_dev_error"]
        # The AURC (%) of the max-softmax confidence of the selected weights' dev logits.
        logits = load(run).logits(dev)
        want = 100 * aurc(max_softmax(logits), correct_predictions(logits, dev.labels))
        assert summary["selected_dev_aurc"] == pytest.approx(want, abs=1e-6)
    assert study["best_value"] == min(t["value"] for t in study["trials"])
    assert "best dev aurc" in capsys.readouterr().out


def test_objective_ece_after_a_map_judges_each_trial_by_its_cross_fitted_dev_ece(tmp_path, capsys):
    from labelemb import load
    from labelemb.data import load as load_data
    from labelemb.metrics import cross_fitted_ece

    assert tune(tmp_path, "--objective", "ece_isotonic", methods="label_smoothing", trials=2, seeds="1") == 0
    record = read_tuning(tmp_path / EXPERIMENT)
    assert record["objective"]["keys"] == ["dev_ece_isotonic"]
    dev = load_data("digits").dev
    for t in record["methods"]["label_smoothing"]["trials"]:
        run = tmp_path / EXPERIMENT / "tuning" / f"trial{t['number']:03d}" / "label_smoothing" / "seed0"
        summary = json.loads((run / "summary.json").read_text())
        assert t["value"] == summary["selected_dev_ece_isotonic"] != summary["selected_dev_ece_scaled"]
        # Isotonic regression fit on each half of the selected weights' dev logits, judged on the other.
        want = cross_fitted_ece(load(run).logits(dev), dev.labels, "isotonic")
        assert summary["selected_dev_ece_isotonic"] == pytest.approx(want, abs=1e-6)
        assert summary["selected_dev_ece_vector"] is None  # only the map the objective names
    # The fresh runs of the default and best settings record none: their maps are fit once, at the end.
    fresh_run = next((tmp_path / EXPERIMENT / "tuned").glob("*/label_smoothing/seed1"))
    fresh = json.loads((fresh_run / "summary.json").read_text())
    assert fresh["selected_dev_ece_isotonic"] is None
    assert "best dev ece isotonic" in capsys.readouterr().out


def test_a_calibration_objective_for_a_task_without_calibration_is_one_line(tmp_path, capsys):
    config = CONFIGS / "ddtp-en-it.yaml"
    args = [
        "tune",
        "--config",
        str(config),
        "--methods",
        "onehot",
        "--objective",
        "nll",
        "--output-dir",
        str(tmp_path),
    ]
    args += QUICK
    assert run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--objective nll: runs of SequenceTask record no dev nll" in err
    assert "use --objective metric" in err and not any(tmp_path.iterdir())
