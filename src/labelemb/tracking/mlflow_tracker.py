"""MLflow: runs through ``MlflowClient``, in a local SQLite store or on a tracking server."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..rundir import EVALUATION_FILE
from .base import (
    MLFLOW_ARTIFACTS,
    MLFLOW_DB,
    STATE_FILE,
    TABLES,
    TRACKERS,
    Tracker,
    project,
    read_state,
    run_name,
    summary_values,
    write_state,
)


@TRACKERS.register("mlflow")
class MLflowTracker(Tracker):
    """A run :func:`run_name` in the MLflow experiment :func:`project`, its id kept in the run folder so
    that a resumed run continues it. The tracking URI: ``train.mlflow_tracking_uri``, else
    ``MLFLOW_TRACKING_URI``, else a SQLite store ``<output_dir>/mlflow.db`` with artifacts in
    ``<output_dir>/mlruns/``."""

    name = "mlflow"
    package = "mlflow"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        from mlflow.tracking import MlflowClient  # lazy: the mlflow extra

        # A client of its own, not mlflow's global active run: runs trained side by side, or a
        # user's own mlflow run around this one, are never mixed up.
        self.client = MlflowClient(tracking_uri=mlflow_uri(config))
        experiment = mlflow_experiment(self.client, config)
        self.state = folder / STATE_FILE
        self.run_id: str | None = read_state(self.state).get(self.name, {}).get("run_id")
        existing = self._existing_run()
        if existing is None:
            tags = {"labelemb.run_dir": str(folder.resolve()), "labelemb.method": config.method.name}
            run = self.client.create_run(experiment, run_name=run_name(config), tags=tags)
            self.run_id = run.info.run_id
            write_state(self.state, self.name, {"run_id": self.run_id})
            self.params: dict[str, str] = {}
        else:
            self.client.update_run(existing.info.run_id, status="RUNNING")
            self.params = dict(existing.data.params)
            # Series continue after the last step MLflow holds (every record has an epoch).
            history = self.client.get_metric_history(existing.info.run_id, "epoch")
            self.last_step = max((m.step for m in history), default=-1)

    def _existing_run(self) -> Any:
        if self.run_id is None:
            return None
        from mlflow.exceptions import MlflowException  # lazy: the mlflow extra

        try:
            run = self.client.get_run(self.run_id)
        except MlflowException:  # deleted from the store (or another store): start a new run
            return None
        return None if run.info.lifecycle_stage == "deleted" else run

    def log_params(self, params: dict[str, str | int | float | bool]) -> None:
        from mlflow.entities import Param  # lazy: the mlflow extra

        # MLflow refuses to change a logged parameter: a resumed run logs only the new keys (the
        # run's identity does not change on resume; train.log_to itself might).
        new = [Param(k, str(v)) for k, v in params.items() if k not in self.params]
        for start in range(0, len(new), 100):  # MLflow's limit of parameters per batch
            self.client.log_batch(self.run_id, params=new[start : start + 100])

    def log_series(self, step: int, values: dict[str, float]) -> None:
        log_metrics(self.client, self.run_id, step, values)

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None:
        self.log_series(step, summary_values(summary))
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None  # closed

    def close(self, failed: bool) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "KILLED")

    @staticmethod
    def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
        from mlflow.exceptions import MlflowException  # lazy: the mlflow extra
        from mlflow.tracking import MlflowClient  # lazy: the mlflow extra

        table_file, files, nested = TABLES[kind]
        client = MlflowClient(tracking_uri=mlflow_uri(config))
        state = experiment_dir / STATE_FILE
        key = "mlflow" if kind == "comparison" else f"mlflow-{kind}"
        parent = read_state(state).get(key, {}).get("run_id")
        try:
            parent = parent and client.get_run(parent).info.run_id
        except MlflowException:
            parent = None
        if not parent:
            experiment = mlflow_experiment(client, config)
            parent = client.create_run(
                experiment, run_name=kind, tags={f"labelemb.{kind}": "true"}
            ).info.run_id
            write_state(state, key, {"run_id": parent})
        table = (experiment_dir / table_file).read_text()
        client.set_tag(parent, "mlflow.note.content", table)  # the run's description in MLflow's UI
        for name in files:
            if (experiment_dir / name).is_file():
                client.log_artifact(parent, str(experiment_dir / name))
        for pattern in nested:
            for child in sorted(experiment_dir.glob(f"{pattern}/{STATE_FILE}")):
                run_id = read_state(child).get("mlflow", {}).get("run_id")
                if run_id:
                    client.set_tag(run_id, "mlflow.parentRunId", parent)  # nests the runs under the table
        client.set_terminated(parent, "FINISHED")

    @staticmethod
    def log_evaluation(config: RunConfig, folder: Path, values: dict[str, float], step: int) -> None:
        from mlflow.tracking import MlflowClient  # lazy: the mlflow extra

        run_id = read_state(folder / STATE_FILE).get("mlflow", {}).get("run_id")
        if not run_id:
            raise ValueError("the run has no MLflow run to add its evaluation to (trained without it)")
        client = MlflowClient(tracking_uri=mlflow_uri(config))
        # The finished run takes the figures as it is: its status stays what training left.
        log_metrics(client, run_id, step, values)
        client.log_artifact(run_id, str(folder / EVALUATION_FILE))


def log_metrics(client: Any, run_id: str, step: int, values: dict[str, float]) -> None:
    """``values`` at ``step`` in the MLflow run ``run_id``, in batches MLflow takes."""
    from mlflow.entities import Metric  # lazy: the mlflow extra

    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for k, v in values.items()]
    for start in range(0, len(metrics), 1000):  # MLflow's limit of metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def mlflow_uri(config: RunConfig) -> str:
    """Where MLflow's runs go: the config's URI, the environment's, or the local store under output_dir."""
    given = config.train.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given
    return f"sqlite:///{(Path(config.output_dir) / MLFLOW_DB).resolve()}"


def mlflow_experiment(client: Any, config: RunConfig) -> str:
    """The id of the MLflow experiment named :func:`project`, created if need be."""
    from mlflow.exceptions import MlflowException  # lazy: the mlflow extra

    found = client.get_experiment_by_name(project(config))
    if found is not None:
        return found.experiment_id
    location = None
    if not (config.train.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        # A SQLite store's artifacts would otherwise land in ./mlruns of the working directory.
        location = (Path(config.output_dir) / MLFLOW_ARTIFACTS).resolve().as_uri()
    try:
        return client.create_experiment(project(config), artifact_location=location)
    except MlflowException:  # created meanwhile by a run trained in another process
        return client.get_experiment_by_name(project(config)).experiment_id
