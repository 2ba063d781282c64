"""Experiment trackers (``train.log_to``): each run's config, checks and results, sent to TensorBoard,
MLflow or Trackio through the tracker's own client library.

A run's folder stays the record; a tracker gets a copy of it: the config as parameters (flattened
dotted keys), every numeric series of ``metrics.jsonl`` at its ``step``, the summary's numbers
(``summary/<key>``) and, where the tracker keeps files, ``config.yaml``, ``summary.json`` and
``metrics.jsonl`` as artifacts. A resumed run continues its series without repeating a step; a
tracker that fails (a server gone) is dropped with a warning and the run goes on. Nothing here
imports a tracker's package unless the config names it.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..rundir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, RunDir, write_text
from .config import TRACKER_NAMES, ConfigError, RunConfig

if TYPE_CHECKING:
    from .loop import Progress, SeedRun

logger = logging.getLogger(__name__)

#: What the trackers of a run keep in its folder to find it again on resume (MLflow's run id,
#: Trackio's run name); in an experiment folder, the comparison's.
STATE_FILE = "trackers.json"
#: TensorBoard's event files, in the run folder (and the experiment folder, for a comparison).
TENSORBOARD_DIR = "tensorboard"
#: The local MLflow store under ``output_dir`` when no tracking URI is given: MLflow's own default
#: is a SQLite file (``mlflow.db``) in the working directory; ours sits beside the runs instead.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlruns"
#: The module each tracker needs, checked before any training (:func:`require`).
MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "trackio": "trackio"}
#: The run files a tracker with artifacts receives when the run finishes (figures too, if any).
RUN_FILES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE)
COMPARISON_FILES = ("comparison.md", "comparison.csv", "curves.png", "curves-seconds.png", "curves-flops.png")
TUNING_FILES = ("tuning.md", "tuning.json", "tuning-history.png")


class TrackerWarning(UserWarning):
    """A tracker failed; the run went on without it."""


def install_hint(name: str) -> str:
    return f'train.log_to names {name}, which is not installed: pip install "labelemb[{name}]"'


def require(names: list[str]) -> None:
    """Raise :class:`ConfigError` with the one-line install hint for a tracker whose package is missing."""
    for name in names:
        try:
            importlib.import_module(MODULES[name])
        except ImportError:
            raise ConfigError(install_hint(name)) from None


# ---------------------------------------------------------------------- what a tracker receives


def config_params(config: RunConfig) -> dict[str, str | int | float | bool]:
    """The config as flat parameters: dotted keys; lists, mappings and null as JSON text (what
    every tracker takes as a parameter value)."""
    return _flatten_params(config.model_dump(mode="json"), "")


def _flatten_params(values: dict[str, Any], prefix: str) -> dict[str, str | int | float | bool]:
    flat: dict[str, str | int | float | bool] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten_params(value, f"{prefix}{key}."))
        elif isinstance(value, (str, int, float, bool)):
            flat[prefix + key] = value
        else:
            flat[prefix + key] = json.dumps(value)
    return flat


def numeric_values(values: dict[str, Any], prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The numbers of a record or summary by key (nested mappings joined with ``/``, so that
    TensorBoard groups them); text, lists and booleans are left out."""
    flat: dict[str, float] = {}
    for key, value in values.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            flat.update(numeric_values(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + key] = float(value)
    return flat


def record_series(record: dict[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` record's series values; its ``step`` is where they are logged."""
    return numeric_values(record, skip=("step",))


def summary_values(summary: dict[str, Any]) -> dict[str, float]:
    return numeric_values(summary, prefix="summary/")


def project(config: RunConfig) -> str:
    """The tracker's experiment (MLflow) or project (Trackio): the experiment's first folder, so
    that a tune's trials (``<experiment>/tuning/trial000``) sit beside its runs, not in projects of
    their own."""
    return config.experiment.split("/")[0]


def run_name(config: RunConfig) -> str:
    """``<method>-seed<N>``, after the experiment's inner folders (``tuning/trial000/onehot-seed0``)."""
    inner = config.experiment.split("/")[1:]
    return "/".join([*inner, f"{config.method.name}-seed{config.seed}"])


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged state file: the tracker starts a new run rather than failing this one


def _write_state(path: Path, key: str, value: dict[str, Any]) -> None:
    state = _read_state(path)
    state[key] = value
    write_text(path, json.dumps(state, indent=2) + "\n")


# ---------------------------------------------------------------------- the trackers


class Tracker:
    """One tracker's view of one run. ``last_step`` is the last step the tracker already holds
    (found in its own store on resume): records up to it are not logged again."""

    name = ""
    last_step = -1

    def log_params(self, params: dict[str, str | int | float | bool]) -> None: ...

    def log_series(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None: ...

    def close(self, failed: bool) -> None: ...

    def log_records(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["step"] > self.last_step:
                self.log_series(record["step"], record_series(record))
                self.last_step = record["step"]


class TensorBoardTracker(Tracker):
    """Event files in ``<run>/tensorboard/`` (torch's SummaryWriter). Each opening purges what
    earlier writers logged (``purge_step=0``) and logs the run's records again: a resumed run's
    series hold every step once, whatever the killed writer had flushed."""

    name = "tensorboard"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder / TENSORBOARD_DIR), purge_step=0)

    def log_params(self, params: dict[str, str | int | float | bool]) -> None:
        from torch.utils.tensorboard.summary import hparams

        # The HParams dashboard reads the session-start summary from the run's own event file
        # (add_hparams would write a second run in a subfolder).
        # torch files a bool under number_value (it tests int first): booleans go in as text.
        values = {k: str(v) if isinstance(v, bool) else v for k, v in params.items()}
        for summary in hparams(values, {}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)

    def log_series(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # each check on disk as it happens, for a TensorBoard watching the run

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None:
        self.log_series(step, summary_values(summary))
        self.writer.add_text("summary", "    " + json.dumps(summary, indent=2).replace("\n", "\n    "), step)

    def close(self, failed: bool) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """A run :func:`run_name` in the MLflow experiment :func:`project`, its id kept in the run folder so
    that a resumed run continues it. The tracking URI: ``train.mlflow_tracking_uri``, else
    ``MLFLOW_TRACKING_URI``, else a SQLite store ``<output_dir>/mlflow.db`` with artifacts in
    ``<output_dir>/mlruns/``."""

    name = "mlflow"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        from mlflow.tracking import MlflowClient

        # A client of its own, not mlflow's global active run: runs trained side by side, or a
        # user's own mlflow run around this one, are never mixed up.
        self.client = MlflowClient(tracking_uri=mlflow_uri(config))
        experiment = mlflow_experiment(self.client, config)
        self.state = folder / STATE_FILE
        self.run_id: str | None = _read_state(self.state).get(self.name, {}).get("run_id")
        existing = self._existing_run()
        if existing is None:
            tags = {"labelemb.run_dir": str(folder.resolve()), "labelemb.method": config.method.name}
            run = self.client.create_run(experiment, run_name=run_name(config), tags=tags)
            self.run_id = run.info.run_id
            _write_state(self.state, self.name, {"run_id": self.run_id})
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
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(self.run_id)
        except MlflowException:  # deleted from the store (or another store): start a new run
            return None
        return None if run.info.lifecycle_stage == "deleted" else run

    def log_params(self, params: dict[str, str | int | float | bool]) -> None:
        from mlflow.entities import Param

        # MLflow refuses to change a logged parameter: a resumed run logs only the new keys (the
        # run's identity does not change on resume; train.log_to itself might).
        new = [Param(k, str(v)) for k, v in params.items() if k not in self.params]
        for start in range(0, len(new), 100):  # MLflow's limit of parameters per batch
            self.client.log_batch(self.run_id, params=new[start : start + 100])

    def log_series(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit of metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None:
        self.log_series(step, summary_values(summary))
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None  # closed

    def close(self, failed: bool) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "KILLED")


def mlflow_uri(config: RunConfig) -> str:
    """Where MLflow's runs go: the config's URI, the environment's, or the local store under output_dir."""
    given = config.train.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given
    return f"sqlite:///{(Path(config.output_dir) / MLFLOW_DB).resolve()}"


def mlflow_experiment(client: Any, config: RunConfig) -> str:
    """The id of the MLflow experiment named :func:`project`, created if need be."""
    from mlflow.exceptions import MlflowException

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


class TrackioTracker(Tracker):
    """A run :func:`run_name` (``<method>-seed<N>``) in the Trackio project :func:`project`:
    Trackio's local store (``$TRACKIO_DIR``, by default ``~/.cache/huggingface/trackio``), or
    ``train.trackio_server_url`` / ``TRACKIO_SERVER_URL``."""

    name = "trackio"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        import trackio

        self.params = config_params(config)
        self.state = folder / STATE_FILE
        known = _read_state(self.state).get(self.name)
        name = known["name"] if known else run_name(config)
        # trackio.init finishes the "current" run it keeps in a context variable: each run is
        # opened in a context of its own, so that seeds trained side by side keep theirs.
        self.run = contextvars.Context().run(
            trackio.init,
            project=project(config),
            name=name,
            config=self.params,
            # A run of this folder that Trackio holds already is continued; else a new one.
            resume="allow" if known else "never",
            server_url=config.train.trackio_server_url,
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )
        if not known:
            _write_state(self.state, self.name, {"project": project(config), "name": self.run.name})
        # The last step trackio.init found for a resumed run, in its local store or on its server.
        last = getattr(self.run, "_initial_last_step", None)
        self.last_step = -1 if last is None else int(last)

    # Parameters go in with trackio.init (its config).

    def log_series(self, step: int, values: dict[str, float]) -> None:
        # Trackio stores JSON: NaN and infinities (a diverged run) as text would break its charts.
        self.run.log({k: v for k, v in values.items() if math.isfinite(v)}, step=step)

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None:
        self.log_series(step, summary_values(summary))
        for path in files:
            # Trackio's artifact names are letters, digits, dot, underscore and hyphen.
            name = f"{self.run.name}-{path.name}".replace("/", ".")
            self.run.log_artifact(path, name=name, type="run-file")

    def close(self, failed: bool) -> None:
        self.run.finish()


TRACKERS: dict[str, Callable[[RunConfig, Path], Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MLflowTracker,
    "trackio": TrackioTracker,
}
assert set(TRACKERS) == set(TRACKER_NAMES)


# ---------------------------------------------------------------------- a run's trackers


class RunTrackers:
    """The trackers of one run; each call is guarded, so that a tracker that fails is dropped with
    a :class:`TrackerWarning` and never costs the run."""

    def __init__(self, config: RunConfig, folder: RunDir) -> None:
        self.folder = folder
        self.trackers: list[Tracker] = []
        for name in config.train.log_to:
            tracker = self._guarded(name, lambda name=name: TRACKERS[name](config, folder.path))
            if isinstance(tracker, Tracker):  # else it failed to start: warned, and left out
                self.trackers.append(tracker)
        params = config_params(config)
        self._each("logging the config", lambda t: t.log_params(params))

    def log_records(self, records: list[dict[str, Any]]) -> None:
        self._each("logging a check", lambda t: t.log_records(records))

    def finish(self, summary: dict[str, Any]) -> None:
        step = int(summary.get("steps", 0))
        files = [self.folder.file(name) for name in RUN_FILES if self.folder.file(name).is_file()]
        files += sorted(p for p in self.folder.path.glob("*") if p.suffix in (".png", ".svg"))
        self._each("logging the results", lambda t: t.finish(summary, step, files))

    def close(self, failed: bool) -> None:
        self._each("closing", lambda t: t.close(failed))
        self.trackers = []

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            if self._guarded(tracker.name, lambda tracker=tracker: call(tracker), what) is False:
                self.trackers.remove(tracker)

    def _guarded(self, name: str, call: Callable[[], Any], what: str = "starting") -> Any:
        return guarded(self.folder.path, name, call, what)


def guarded(where: Path, name: str, call: Callable[[], Any], what: str) -> Any:
    """``call()``; False (and a :class:`TrackerWarning` naming ``where``) if it raised."""
    try:
        result = call()
    except Exception as error:
        text = str(error).splitlines()[0] if str(error) else ""
        message = (
            f"{where}: {name} tracking failed {what} ({type(error).__name__}: {text}); "
            "the run goes on without it"
        )
        logger.warning(message)
        warnings.warn(message, TrackerWarning, stacklevel=3)
        return False
    return True if result is None else result


@contextlib.contextmanager
def tracked(runs: list[SeedRun], enabled: bool) -> Iterator[list[RunTrackers]]:
    """The trackers of ``runs`` (none unless ``enabled`` and the config names some), each with the
    records its run already has; closed on the way out, as failed if an exception left."""
    if not enabled or not runs[0].config.train.log_to:
        yield []
        return
    trackers = []
    failed = True
    try:
        for run in runs:
            trackers.append(RunTrackers(run.config, run.folder))
            trackers[-1].log_records(run.progress.records)
        yield trackers
        failed = False
    finally:
        for tracker in trackers:
            tracker.close(failed)


def on_checkpoint(
    runs: list[SeedRun],
    trackers: list[RunTrackers],
    then: Callable[[list[Progress]], None] | None,
) -> Callable[[list[Progress]], None] | None:
    """The loop's ``on_checkpoint``: each run's new record to its trackers, then ``then``."""
    if not trackers:
        return then

    def checked(progress: list[Progress]) -> None:
        for run, tracker in zip(runs, trackers):
            tracker.log_records(run.progress.records)
        if then is not None:
            then(progress)

    return checked


# ---------------------------------------------------------------------- a comparison's or a tuning's table

#: The tables ``compare`` and ``tune`` write beside their runs: (table, files logged with it, the run
#: folders it nests, as globs under the experiment folder).
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "comparison": ("comparison.md", COMPARISON_FILES, ("*/seed*",)),
    # The default runs, the tuned runs and the trials that chose them.
    "tuning": ("tuning.md", TUNING_FILES, ("*/seed*", "tuned/*/*/seed*", "tuning/*/*/seed*")),
}


def log_comparison(config: RunConfig, experiment_dir: Path) -> None:
    """``compare``'s table beside its runs (see :func:`log_table`)."""
    log_table(config, experiment_dir, "comparison")


def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
    """``compare``'s or ``tune``'s table (``kind``: a key of :data:`TABLES`) beside its runs: an
    MLflow parent run named ``kind`` with the runs nested under it and the table and figures as
    artifacts, a TensorBoard text in ``<experiment>/tensorboard/<kind>/``, a Trackio run ``kind``
    with the table. A failure is a warning."""
    for name in config.train.log_to:
        guarded(
            experiment_dir,
            name,
            lambda name=name: _TABLE_LOGGERS[name](config, experiment_dir, kind),
            f"logging the {kind}",
        )


def _tensorboard_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    table = (experiment_dir / TABLES[kind][0]).read_text()
    # A folder of its own: purging what an earlier compare (or tune) wrote leaves the other's text.
    with SummaryWriter(str(experiment_dir / TENSORBOARD_DIR / kind), purge_step=0) as writer:
        writer.add_text(kind, table, 0)


def _mlflow_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    table_file, files, nested = TABLES[kind]
    client = MlflowClient(tracking_uri=mlflow_uri(config))
    state = experiment_dir / STATE_FILE
    key = "mlflow" if kind == "comparison" else f"mlflow-{kind}"
    parent = _read_state(state).get(key, {}).get("run_id")
    try:
        parent = parent and client.get_run(parent).info.run_id
    except MlflowException:
        parent = None
    if not parent:
        experiment = mlflow_experiment(client, config)
        parent = client.create_run(experiment, run_name=kind, tags={f"labelemb.{kind}": "true"}).info.run_id
        _write_state(state, key, {"run_id": parent})
    table = (experiment_dir / table_file).read_text()
    client.set_tag(parent, "mlflow.note.content", table)  # the run's description in MLflow's UI
    for name in files:
        if (experiment_dir / name).is_file():
            client.log_artifact(parent, str(experiment_dir / name))
    for pattern in nested:
        for child in sorted(experiment_dir.glob(f"{pattern}/{STATE_FILE}")):
            run_id = _read_state(child).get("mlflow", {}).get("run_id")
            if run_id:
                client.set_tag(run_id, "mlflow.parentRunId", parent)  # nests the runs under the table
    client.set_terminated(parent, "FINISHED")


def _trackio_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
    import trackio

    table_file = TABLES[kind][0]
    run = contextvars.Context().run(
        trackio.init,
        project=project(config),
        name=kind,
        resume="allow",
        server_url=config.train.trackio_server_url,
        embed=False,
        auto_log_cpu=False,
        auto_log_gpu=False,
    )
    try:
        table = (experiment_dir / table_file).read_text()
        run.log({kind: trackio.Markdown(table)}, step=0)
        run.log_artifact(experiment_dir / table_file, name=f"{project(config)}-{table_file}", type=kind)
    finally:
        run.finish()


_TABLE_LOGGERS: dict[str, Callable[[RunConfig, Path, str], None]] = {
    "tensorboard": _tensorboard_table,
    "mlflow": _mlflow_table,
    "trackio": _trackio_table,
}
