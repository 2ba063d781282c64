"""Trackio: runs through ``trackio.init``, in its local store or on a Trackio server."""

from __future__ import annotations

import contextvars
import math
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..rundir import EVALUATION_FILE
from .base import (
    STATE_FILE,
    TABLES,
    TRACKERS,
    Tracker,
    config_params,
    project,
    read_state,
    run_name,
    summary_values,
    write_state,
)


@TRACKERS.register("trackio")
class TrackioTracker(Tracker):
    """A run :func:`run_name` (``<method>-seed<N>``) in the Trackio project :func:`project`:
    Trackio's local store (``$TRACKIO_DIR``, by default ``~/.cache/huggingface/trackio``), or
    ``train.trackio_server_url`` / ``TRACKIO_SERVER_URL``."""

    name = "trackio"
    package = "trackio"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        self.params = config_params(config)
        self.state = folder / STATE_FILE
        known = read_state(self.state).get(self.name)
        name = known["name"] if known else run_name(config)
        # A run of this folder that Trackio holds already is continued; else a new one.
        self.run = open_run(config, name, "allow" if known else "never", self.params)
        if not known:
            write_state(self.state, self.name, {"project": project(config), "name": self.run.name})
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

    @staticmethod
    def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
        import trackio  # lazy: the trackio extra

        table_file = TABLES[kind][0]
        run = open_run(config, kind, "allow")
        try:
            table = (experiment_dir / table_file).read_text()
            run.log({kind: trackio.Markdown(table)}, step=0)
            run.log_artifact(experiment_dir / table_file, name=f"{project(config)}-{table_file}", type=kind)
        finally:
            run.finish()

    @staticmethod
    def log_evaluation(config: RunConfig, folder: Path, values: dict[str, float], step: int) -> None:
        known = read_state(folder / STATE_FILE).get(TrackioTracker.name)
        if not known:
            raise ValueError("the run has no Trackio run to add its evaluation to (trained without it)")
        run = open_run(config, known["name"], "allow")  # the run's own, continued
        try:
            run.log({k: v for k, v in values.items() if math.isfinite(v)}, step=step)
            name = f"{run.name}-{EVALUATION_FILE}".replace("/", ".")
            run.log_artifact(folder / EVALUATION_FILE, name=name, type="run-file")
        finally:
            run.finish()


def open_run(config: RunConfig, name: str, resume: str, params: dict[str, Any] | None = None) -> Any:
    """``trackio.init`` of run ``name`` in the config's project, on its server or the local store."""
    import trackio  # lazy: the trackio extra

    # trackio.init finishes the "current" run it keeps in a context variable: each run is opened
    # in a context of its own, so that seeds trained side by side keep theirs.
    return contextvars.Context().run(
        trackio.init,
        project=project(config),
        name=name,
        config=params,
        resume=resume,
        server_url=config.train.trackio_server_url,
        embed=False,
        auto_log_cpu=False,
        auto_log_gpu=False,
    )
