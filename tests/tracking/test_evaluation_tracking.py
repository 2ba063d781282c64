"""train.log_to and a run's evaluation: once a finished run is judged on its selected weights, every
tracker gets the figures of its evaluation.json (``eval/<figure>``, ``eval/ood/<set>/<figure>``),
read back through the tracker's own reader, and the comparison logged beside the runs holds the
tables of them; a run evaluated anew replaces its figures, one read back as it was sends nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelemb.cli import main
from labelemb.rundir import EVALUATION_FILE
from labelemb.tracking import TrackerWarning

METHODS = ("onehot", "label_smoothing")


@pytest.fixture
def trackers_installed() -> None:
    """Fail (never skip) naming a tracker package the tests need."""
    for module in ("tensorboard", "mlflow", "trackio"):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{module} is not installed: pip install -e '.[{module}]'", pytrace=False)


def compare(out: Path, experiment: str) -> Path:
    """Two methods of one seed on digits, judged on the photo patches too, logged to every tracker."""
    args = ["compare", "--methods", ",".join(METHODS), "--output-dir", str(out), "--no-progress"]
    args += ["--log-to", "tensorboard,mlflow,trackio", f"experiment={experiment}", "data.name=digits"]
    args += ["model.name=mlp", "model.hidden=[32]", "train.epochs=1", "ood=[{data: patches}]"]
    assert main(args) == 0
    return out / experiment


def expected_figures(run: Path) -> dict[str, float]:
    """The test's own reading of evaluation.json: every number of its test split and OOD figures."""
    record = json.loads((run / EVALUATION_FILE).read_text())
    figures = {f"eval/{k}": v for k, v in record["test"].items() if isinstance(v, (int, float))}
    for name, held in record["ood"].items():
        figures.update({f"eval/ood/{name}/{k}": v for k, v in held["figures"].items()})
    return figures


def summary_step(run: Path) -> int:
    return json.loads((run / "summary.json").read_text())["steps"]


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_text(folder: Path, tag: str) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    (event,) = events.Tensors(tag)[-1:]
    return event.tensor_proto.string_val[0].decode("utf-8")


def mlflow_history(out: Path, run: Path) -> tuple[Any, str, dict[str, list[tuple[int, float]]]]:
    """The MLflow client, the run's id and each eval/ figure's history (step, value)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    held = client.get_run(run_id).data.metrics
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in held
        if key.startswith("eval/")
    }
    return client, run_id, history


def test_each_run_s_evaluation_and_the_comparison_s_tables_of_them_in_every_tracker(
    tmp_path, trackio_store, trackers_installed
):
    out = tmp_path / "runs"
    experiment = compare(out, "ev")
    for method in METHODS:
        run = experiment / method / "seed0"
        want, step = expected_figures(run), summary_step(run)
        assert "eval/selective_msp_aurc" in want and "eval/ood/patches/ood_energy_auroc" in want
        assert "eval/selective_msp_risk_curve" not in want  # a curve is no figure
        # TensorBoard: a folder of its own, each figure once, at the summary's step.
        scalars = tensorboard_scalars(run / "tensorboard" / "evaluation")
        assert scalars == {key: [(step, pytest.approx(value, rel=1e-6))] for key, value in want.items()}
        # MLflow: in the run's own (finished) run, with the file.
        client, run_id, history = mlflow_history(out, run)
        assert history == {key: [(step, pytest.approx(value, rel=1e-12))] for key, value in want.items()}
        assert client.get_run(run_id).info.status == "FINISHED"
        assert EVALUATION_FILE in {a.path for a in client.list_artifacts(run_id)}
        # Trackio: in the run's own run, at the same step.
        from trackio.sqlite_storage import SQLiteStorage

        logged = {
            key: (row["step"], value)
            for row in SQLiteStorage.get_logs("ev", f"{method}-seed0")
            for key, value in row.items()
            if key.startswith("eval/")
        }
        assert logged == {key: (step, pytest.approx(value, rel=1e-12)) for key, value in want.items()}
    # The comparison's tables of the evaluations go with the comparison table.
    table = (experiment / "comparison.md").read_text()
    assert "Knowing when it is wrong" in table and "Out-of-distribution inputs: patches" in table
    client, _, _ = mlflow_history(out, experiment / METHODS[0] / "seed0")
    parent = json.loads((experiment / "trackers.json").read_text())["mlflow"]["run_id"]
    assert client.get_run(parent).data.tags["mlflow.note.content"] == table
    assert tensorboard_text(experiment / "tensorboard" / "comparison", "comparison/text_summary") == table
    import trackio

    assert "comparison" in [r.name for r in trackio.Api().runs("ev")]


def test_a_run_evaluated_anew_replaces_its_figures_and_the_comparison_is_logged_again(
    tmp_path, capsys, trackio_store, trackers_installed
):
    out = tmp_path / "runs"
    experiment = compare(out, "again")
    run = experiment / METHODS[0] / "seed0"
    _, _, first = mlflow_history(out, run)
    # Read back as it was: nothing is sent again.
    assert main(["evaluate", str(experiment), "--no-progress"]) == 0
    assert mlflow_history(out, run)[2] == first
    # Evaluated anew (its record gone): the figures again, TensorBoard's each once.
    (run / EVALUATION_FILE).unlink()
    (experiment / "comparison.md").write_text("stale\n")
    (experiment / "tensorboard").rename(experiment / "old-tensorboard")
    assert main(["evaluate", str(experiment), "--no-progress"]) == 0
    capsys.readouterr()
    _, _, second = mlflow_history(out, run)
    assert all(len(second[key]) == 2 and second[key][1] == second[key][0] for key in first)
    step = summary_step(run)
    scalars = tensorboard_scalars(run / "tensorboard" / "evaluation")
    assert scalars == {key: [(step, pytest.approx(v, rel=1e-6))] for key, v in expected_figures(run).items()}
    table = (experiment / "comparison.md").read_text()
    assert "Knowing when it is wrong" in table
    assert tensorboard_text(experiment / "tensorboard" / "comparison", "comparison/text_summary") == table


def test_a_tracker_without_the_run_costs_a_warning_and_the_others_get_the_figures(
    tmp_path, capsys, trackio_store, trackers_installed
):
    out = tmp_path / "runs"
    experiment = compare(out, "lost")
    run = experiment / METHODS[1] / "seed0"
    state = json.loads((run / "trackers.json").read_text())
    del state["mlflow"]
    (run / "trackers.json").write_text(json.dumps(state))
    (run / EVALUATION_FILE).unlink()
    (run / "tensorboard" / "evaluation").rename(run / "tensorboard-evaluation-before")
    with pytest.warns(TrackerWarning, match="mlflow tracking failed logging the evaluation .*no MLflow run"):
        assert main(["evaluate", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert set(tensorboard_scalars(run / "tensorboard" / "evaluation")) == set(expected_figures(run))
