"""Experiment trackers (``train.log_to``): each run's config, checks and results, sent to TensorBoard,
MLflow, Trackio or Weights & Biases through the tracker's own client library.

A run's folder stays the record; a tracker gets a copy of it: the config as parameters (flattened
dotted keys), every numeric series of ``metrics.jsonl`` at its ``step``, the summary's numbers
(``summary/<key>``) and, where the tracker keeps files, ``config.yaml``, ``summary.json`` and
``metrics.jsonl`` as artifacts; once the run is evaluated on its selected weights
(:func:`log_evaluation`), the figures of its ``evaluation.json`` (``eval/<figure>``,
``eval/ood/<set>/<figure>``). A resumed run continues its series without repeating a step; a
tracker that fails (a server gone) is dropped with a warning and the run goes on. Nothing here
imports a tracker's package unless the config names it. Each tracker is a module of its own
(``tensorboard_tracker``, ``mlflow_tracker``, ``trackio_tracker``, ``wandb_tracker``), registered
on :data:`TRACKERS` (a :class:`~labelemb.registry.Registry`); what they share is in ``base``. The
trainer never imports this package: it is handed :class:`TrackerCallback`, which every run gets
(:data:`labelemb.callbacks.DEFAULTS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..callbacks import Callback
from ..config import ConfigError, RunConfig
from ..registry import unknown_name_message
from ..rundir import RunDir
from ..training import distributed
from .base import (
    RUN_FILES,
    STATE_FILE,
    TABLES,
    TRACKERS,
    Tracker,
    TrackerWarning,
    config_params,
    evaluation_values,
    guarded,
)
from .mlflow_tracker import MLflowTracker
from .tensorboard_tracker import TensorBoardTracker
from .trackio_tracker import TrackioTracker
from .wandb_tracker import WandbTracker

__all__ = [
    "STATE_FILE",
    "TABLES",
    "TRACKERS",
    "MLflowTracker",
    "RunTrackers",
    "TensorBoardTracker",
    "Tracker",
    "TrackerCallback",
    "TrackerWarning",
    "TrackioTracker",
    "WandbTracker",
    "evaluation_values",
    "install_hint",
    "log_evaluation",
    "log_table",
    "require",
]


def install_hint(name: str) -> str:
    return f'train.log_to names {name}, which is not installed: pip install "labelemb[{name}]"'


def require(names: list[str]) -> None:
    """Raise :class:`ConfigError` for a tracker that is not one (with a did-you-mean), or the
    one-line install hint for a tracker whose package is missing."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"train.log_to: {unknown_name_message('tracker', name, TRACKERS.names())}")
    for name in names:
        try:
            importlib.import_module(TRACKERS.get(name).package)
        except ImportError:
            raise ConfigError(install_hint(name)) from None


# ---------------------------------------------------------------------- a run's trackers


class RunTrackers:
    """The trackers of one run; each call is guarded, so that a tracker that fails is dropped with
    a :class:`TrackerWarning` and never costs the run."""

    def __init__(self, config: RunConfig, folder: RunDir) -> None:
        self.folder = folder
        self.trackers: list[Tracker] = []
        for name in config.train.log_to:
            tracker = self._guarded(name, lambda name=name: TRACKERS.get(name)(config, folder.path))
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


class TrackerCallback(Callback):
    """``train.log_to`` as the trainer's callback: each run's earlier records when it starts, each
    check's once it is on disk, the results once written; closed as failed if an exception left.
    The main process alone logs; a run whose config names no tracker imports none."""

    def __init__(self) -> None:
        self.trackers: list[RunTrackers] = []

    def check(self, configs: Sequence[RunConfig]) -> None:
        # A tracker the config names but this machine lacks: its install line, before any training.
        require(sorted({name for config in configs for name in config.train.log_to}))

    def on_run_start(self, runs: list[Any]) -> None:
        if not distributed.current().is_main or not runs[0].config.train.log_to:
            return
        for run in runs:
            self.trackers.append(RunTrackers(run.config, run.folder))
            self.trackers[-1].log_records(run.progress.records)

    def on_check(self, runs: list[Any]) -> None:
        for run, tracker in zip(runs, self.trackers):
            tracker.log_records(run.progress.records)

    def on_run_end(self, runs: list[Any], summaries: list[dict[str, Any]]) -> None:
        for tracker, summary in zip(self.trackers, summaries):
            tracker.finish(summary)

    def on_close(self, runs: list[Any], failed: bool) -> None:
        for tracker in self.trackers:
            tracker.close(failed)
        self.trackers = []


# ---------------------------------------------------------------------- a comparison's or a tuning's table


def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
    """``compare``'s or ``tune``'s table (``kind``: a key of :data:`TABLES`) beside its runs: an
    MLflow parent run named ``kind`` with the runs nested under it and the table and figures as
    artifacts, a TensorBoard text in ``<experiment>/tensorboard/<kind>/``, a Trackio run ``kind``
    with the table. A failure is a warning."""
    for name in config.train.log_to:
        guarded(
            experiment_dir,
            name,
            lambda name=name: TRACKERS.get(name).log_table(config, experiment_dir, kind),
            f"logging the {kind}",
        )


# ---------------------------------------------------------------------- a finished run's evaluation


def log_evaluation(config: RunConfig, folder: Path, record: dict[str, Any]) -> None:
    """A finished run's evaluation (its ``evaluation.json``, ``record``) to each tracker its config
    names, as :func:`evaluation_values` at the step of its summary: TensorBoard in
    ``<run>/tensorboard/evaluation/``, MLflow and Trackio in the run's own run, with the file as an
    artifact. A failure is a warning."""
    values = evaluation_values(record)
    step = int(RunDir(folder).read_summary().get("steps", 0))
    for name in config.train.log_to:
        guarded(
            folder,
            name,
            lambda name=name: TRACKERS.get(name).log_evaluation(config, folder, values, step),
            "logging the evaluation",
        )
