"""train.log_to: every tracker receives a run's config, series and results, read back through the
tracker's own reader; a resumed run repeats no step; a failing tracker costs a warning, not the run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labelemb.cli import main
from labelemb.tracking import TrackerWarning
from labelemb.training import ConfigError, build_config, train

TRACKERS = ("tensorboard", "mlflow", "trackio", "wandb")


class Interrupted(Exception):
    """Raised from ``on_checkpoint`` to stop a run the way a crash would."""


def stop_after_first_check(progress: Any) -> None:
    raise Interrupted


def require(module: str) -> None:
    """Fail (never skip) naming the package a test needs."""
    try:
        __import__(module)
    except ImportError:
        pytest.fail(f"{module} is not installed: pip install -e '.[{module}]'", pytrace=False)


def tiny(tmp_path: Path, log_to: list[str], experiment: str = "trk", **train: Any) -> Any:
    raw = {
        "experiment": experiment,
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 2, "eval_every": 600, "progress": False, "log_to": log_to, **train},
    }
    return build_config(raw)


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The test's own reading of which record values are series (nested keys joined by /)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = float(value)
    return out


def expected_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every numeric series of metrics.jsonl, as (step, value) in order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in read_records(run_dir):
        for key, value in flat_numbers(record).items():
            if key != "step":
                series.setdefault(key, []).append((record["step"], value))
    return series


def expected_summary(run_dir: Path) -> dict[str, float]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {f"summary/{k}": v for k, v in flat_numbers(summary).items()}


def expected_params(config: Any) -> dict[str, str]:
    """The flattened config, each value as text (lists, mappings and null as JSON)."""

    def flatten(values: dict[str, Any], prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in values.items():
            if isinstance(value, dict) and value:
                out.update(flatten(value, f"{prefix}{key}."))
            elif isinstance(value, (str, int, float, bool)):
                out[prefix + key] = str(value)
            else:
                out[prefix + key] = json.dumps(value)
        return out

    return flatten(config.model_dump(mode="json"), "")


def train_killed_then_resumed(config: Any, killed_log_to: list[str] | None = None) -> Path:
    """Kill ``config``'s run after its first check (trained with ``killed_log_to`` trackers, the
    config's own by default), then train it to the end."""
    killed = config
    if killed_log_to is not None:
        killed = config.model_copy(
            update={"train": config.train.model_copy(update={"log_to": killed_log_to})}
        )
    with pytest.raises(Interrupted):
        train(killed, on_checkpoint=stop_after_first_check)
    run_dir = config.run_dir()
    assert len(read_records(run_dir)) == 1 and not (run_dir / "summary.json").exists()
    train(config)
    return run_dir


def compare_series(read: dict[str, list[tuple[int, float]]], run_dir: Path) -> None:
    """The tracker's series: metrics.jsonl's, step for step and value for value, then the summary."""
    expected = expected_series(run_dir)
    steps = [r["step"] for r in read_records(run_dir)]
    assert len(steps) >= 3
    summary = expected_summary(run_dir)
    for key, points in expected.items():
        assert [s for s, _ in read[key]] == [s for s, _ in points], key  # no step twice, none missing
        assert [v for _, v in read[key]] == pytest.approx([v for _, v in points], rel=1e-6), key
    for key, value in summary.items():
        assert read[key] == [(steps[-1], pytest.approx(value, rel=1e-6))], key
    assert set(read) == set(expected) | set(summary)
    # Calibration raw and after temperature scaling, and the temperature, in every tracker (issue 46).
    calibration = {"test_ece", "test_ece_scaled", "test_adaece_scaled", "temperature", "dev_nll_scaled"}
    assert calibration <= set(read) and "summary/selected_temperature" in read


# ---------------------------------------------------------------------- TensorBoard


def test_tensorboard_gets_every_series_the_config_and_the_summary_across_a_resume(tmp_path):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    config = tiny(tmp_path, ["tensorboard"])
    # Killed without trackers, resumed with them: the same run (log_to is not its identity), and
    # the tracker gets the records from before the resume too.
    run_dir = train_killed_then_resumed(config, killed_log_to=[])
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    read = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    compare_series(read, run_dir)

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    hparams = {}
    for key, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind)
    expected = expected_params(config)
    assert set(hparams) == set(expected)
    for key, value in hparams.items():
        if isinstance(value, float) and expected[key] not in ("True", "False"):
            assert value == pytest.approx(float(expected[key])), key
        else:
            assert str(value) == expected[key], key


def test_tensorboard_rewrites_what_a_killed_writer_left_without_duplicates(tmp_path):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny(tmp_path, ["tensorboard"])
    run_dir = train_killed_then_resumed(config)  # both attempts write event files
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    read = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    compare_series(read, run_dir)


# ---------------------------------------------------------------------- MLflow


def test_mlflow_continues_the_same_run_with_every_series_params_and_artifacts(tmp_path):
    require("mlflow")
    from mlflow.tracking import MlflowClient

    config = tiny(tmp_path, ["mlflow"])
    with pytest.raises(Interrupted):
        train(config, on_checkpoint=stop_after_first_check)
    run_dir = config.run_dir()
    run_id = json.loads((run_dir / "trackers.json").read_text())["mlflow"]["run_id"]
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(run_id).info.status == "FAILED"
    train(config)
    assert json.loads((run_dir / "trackers.json").read_text())["mlflow"]["run_id"] == run_id

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "label_embedding-seed0"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "trk"
    assert client.search_runs([experiment.experiment_id])[0].info.run_id == run_id  # one run, not two
    read = {
        key: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in run.data.metrics
    }
    compare_series(read, run_dir)
    assert run.data.params == expected_params(config)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "summary.json", "metrics.jsonl"} <= artifacts
    # Local by default: the store and its artifacts under output_dir.
    assert (tmp_path / "runs" / "mlflow.db").is_file()
    assert (tmp_path / "runs" / "mlruns").is_dir()


def test_an_mlflow_server_that_is_gone_costs_a_warning_not_the_run(tmp_path, monkeypatch):
    require("mlflow")
    # A port nothing listens on refuses at once; no retries, so that the test is quick.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    config = tiny(tmp_path, ["mlflow", "tensorboard"], mlflow_tracking_uri="http://127.0.0.1:9")
    with pytest.warns(TrackerWarning, match="mlflow tracking failed"):
        summary = train(config)
    assert summary["steps"] > 0 and (config.run_dir() / "summary.json").is_file()
    assert (config.run_dir() / "tensorboard").is_dir()  # the other tracker went on


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Any:
    """A real MLflow tracking server on a loopback port, its store in ``tmp_path / "server"``;
    yields ``(uri, store_uri, stop)``, stopped on the way out if the test did not stop it."""
    require("mlflow")
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = tmp_path / "server"
    store.mkdir()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{store / 'store.db'}", "--workers", "1"]
    command += ["--default-artifact-root", str(store / "artifacts")]
    log = (store / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop() -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)  # as a crashed or unplugged server: no goodbye
            server.wait()

    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop()
            pytest.fail(f"the MLflow server did not start: {(store / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield uri, f"sqlite:///{store / 'store.db'}", stop
    finally:
        stop()
        log.close()


def test_an_mlflow_server_lost_mid_run_costs_a_warning_and_keeps_what_it_got(
    tmp_path, monkeypatch, mlflow_server
):
    from mlflow.tracking import MlflowClient

    uri, store_uri, stop_server = mlflow_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    config = tiny(tmp_path, ["mlflow", "tensorboard"], mlflow_tracking_uri=uri)
    checks: list[int] = []

    def server_goes_away(progress: Any) -> None:
        checks.append(progress.step)
        if len(checks) == 1:
            stop_server()

    with pytest.warns(TrackerWarning, match="mlflow tracking failed logging a check"):
        summary = train(config, on_checkpoint=server_goes_away)
    run_dir = config.run_dir()
    assert len(checks) >= 3 and summary["steps"] > checks[0]
    assert (run_dir / "summary.json").is_file() and (run_dir / "tensorboard").is_dir()
    assert len(read_records(run_dir)) == len(checks)  # the run lost nothing of its own
    # What the server stored before it went: the first check, value for value.
    client = MlflowClient(tracking_uri=store_uri)
    run_id = json.loads((run_dir / "trackers.json").read_text())["mlflow"]["run_id"]
    expected = expected_series(run_dir)
    for key in client.get_run(run_id).data.metrics:
        held = [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        assert held == [(expected[key][0][0], pytest.approx(expected[key][0][1], rel=1e-6))], key
    assert "dev_error" in client.get_run(run_id).data.metrics


# ---------------------------------------------------------------------- Trackio


def test_trackio_continues_the_same_run_with_every_series_and_the_config(tmp_path, trackio_store):
    require("trackio")
    config = tiny(tmp_path, ["trackio"], experiment="trk-trackio")
    run_dir = train_killed_then_resumed(config)
    import trackio
    from trackio.sqlite_storage import SQLiteStorage

    runs = list(trackio.Api().runs("trk-trackio"))
    assert [r.name for r in runs] == ["label_embedding-seed0"]  # continued, not a second run
    logs = SQLiteStorage.get_logs("trk-trackio", "label_embedding-seed0")
    read: dict[str, list[tuple[int, float]]] = {}
    for row in logs:
        for key, value in row.items():
            if key not in ("step", "timestamp"):
                read.setdefault(key, []).append((row["step"], value))
    compare_series(read, run_dir)
    config_read = {k: v for k, v in runs[0].config.items() if not k.startswith("_")}
    assert {k: str(v) for k, v in config_read.items()} == expected_params(config)
    assert str(trackio_store) in str(SQLiteStorage.get_project_db_path("trk-trackio"))


# ---------------------------------------------------------------------- no trackers, CLI, missing package


def test_a_run_without_log_to_writes_no_tracker_file_and_imports_no_tracker(tmp_path):
    script = f"""
import sys
from labelemb.training import build_config, train
config = build_config({{"output_dir": {str(tmp_path / "runs")!r}, "data": {{"name": "digits"}},
    "model": {{"name": "mlp", "hidden": [32]}}, "train": {{"epochs": 1, "progress": False}}}})
train(config)
print(sorted(m for m in ("mlflow", "trackio", "tensorboard", "tensorboardX", "wandb") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    names = {p.name for p in tmp_path.rglob("*")}
    assert not names & {"tensorboard", "trackers.json", "mlflow.db", "mlruns", "mlflow.db-journal"}
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_compare_log_to_on_the_cli_nests_the_runs_under_a_comparison_run(tmp_path, capsys):
    require("mlflow")
    require("tensorboard")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "runs"
    code = main(
        [
            "compare",
            "--methods",
            "onehot,label_embedding",
            "--output-dir",
            str(out),
            "--no-progress",
            "--log-to",
            "tensorboard,mlflow",
            "experiment=cmp",
            "data.name=digits",
            "model.name=mlp",
            "model.hidden=[32]",
            "train.epochs=1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    experiment_dir = out / "cmp"
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    parent = json.loads((experiment_dir / "trackers.json").read_text())["mlflow"]["run_id"]
    assert {a.path for a in client.list_artifacts(parent)} >= {"comparison.md", "comparison.csv"}
    assert (
        client.get_run(parent).data.tags["mlflow.note.content"]
        == (experiment_dir / "comparison.md").read_text()
    )
    assert "| method | T | ECE % | ECE % scaled |" in (experiment_dir / "comparison.md").read_text()
    for method in ("onehot", "label_embedding"):
        child = json.loads((experiment_dir / method / "seed0" / "trackers.json").read_text())["mlflow"][
            "run_id"
        ]
        assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent
        assert (experiment_dir / method / "seed0" / "tensorboard").is_dir()
    events = EventAccumulator(str(experiment_dir / "tensorboard" / "comparison"))
    events.Reload()
    assert "comparison/text_summary" in events.Tags()["tensors"]


def test_tune_log_to_nests_trials_and_fresh_runs_under_a_tuning_run(tmp_path, capsys, recwarn):
    require("mlflow")
    require("tensorboard")
    require("optuna")
    require("trackio")
    import trackio
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "runs"
    args = ["tune", "--methods", "onehot,label_smoothing", "--trials", "2", "--seeds", "1"]
    args += ["--space", "train.lr=1e-3:1e-2:log", "--output-dir", str(out), "--no-progress"]
    args += ["--log-to", "tensorboard,mlflow,trackio", "experiment=tn", "model.hidden=[32]"]
    args += ["train.epochs=1", "train.eval_every=600"]
    assert main(args) == 0, capsys.readouterr().err
    experiment_dir = out / "tn"
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    parent = json.loads((experiment_dir / "trackers.json").read_text())["mlflow-tuning"]["run_id"]
    held = client.get_run(parent)
    assert held.info.run_name == "tuning" and held.info.status == "FINISHED"
    assert held.data.tags["mlflow.note.content"] == (experiment_dir / "tuning.md").read_text()
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert artifacts == {"tuning.md", "tuning.json", "tuning-history.png"}
    # Both methods' two trials, their default runs and their tuned runs on seed 1: 8 runs, all nested.
    children = sorted(experiment_dir.glob("*/seed*/trackers.json"))
    children += sorted(experiment_dir.glob("tuned/*/*/seed*/trackers.json"))
    children += sorted(experiment_dir.glob("tuning/*/*/seed*/trackers.json"))
    assert len(children) == 8, children
    for child in children:
        run_id = json.loads(child.read_text())["mlflow"]["run_id"]
        assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == parent, child
        assert (child.parent / "tensorboard").is_dir()
    events = EventAccumulator(str(experiment_dir / "tensorboard" / "tuning"))
    events.Reload()
    assert "tuning/text_summary" in events.Tags()["tensors"]
    # The tune again: every run is reused, and the tuning run is the same one, not a second.
    assert main(args) == 0
    assert json.loads((experiment_dir / "trackers.json").read_text())["mlflow-tuning"]["run_id"] == parent
    experiment = client.get_experiment_by_name("tn")
    named = [r.info.run_name for r in client.search_runs([experiment.experiment_id])]
    assert named.count("tuning") == 1 and len(named) == 9, named
    # One project, the trials' runs named by their folders: as in MLflow's experiment.
    assert sorted(r.name for r in trackio.Api().runs("tn")) == sorted(named)
    assert "tuning/trial000/onehot-seed0" in named and "onehot-seed1" in named
    assert any(re.fullmatch(r"tuned/trial00[01]/onehot-seed1", name) for name in named), named
    assert not [str(w.message) for w in recwarn if issubclass(w.category, TrackerWarning)]


def test_train_log_to_on_the_cli_sets_train_log_to(tmp_path):
    from labelemb.cli.parser import build_parser
    from labelemb.cli.run import common_settings
    from labelemb.experiment.setting import typed_config

    args = build_parser().parse_args(["train", "--log-to", "tensorboard,trackio"])
    config = typed_config(None, common_settings(args))
    assert config.train.log_to == ["tensorboard", "trackio"]
    assert "train.log_to" not in json.dumps(config.comparable())  # not the run's identity
    assert config.comparable() == typed_config(None).comparable()


def test_an_unknown_tracker_is_a_config_error(tmp_path, capsys):
    code = main(["train", "--log-to", "neptune", "--output-dir", str(tmp_path), "train.epochs=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train.log_to" in err and "tensorboard" in err
    assert not (tmp_path / "demo-digits-mlp").exists()


@pytest.mark.parametrize("name", TRACKERS)
def test_a_missing_tracker_package_says_how_to_install_it(tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    config = tiny(tmp_path, [name])
    with pytest.raises(ConfigError) as error:
        train(config)
    assert (
        str(error.value)
        == f'train.log_to names {name}, which is not installed: pip install "labelemb[{name}]"'
    )
    assert not config.run_dir().exists()  # nothing trained, nothing left
