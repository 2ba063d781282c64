"""Weights & Biases: runs through ``wandb.init``, online or offline (``WANDB_MODE=offline``: written
to a local folder, ``wandb sync`` later)."""

from __future__ import annotations

import math
import os
import secrets
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


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """A run :func:`run_name` (``<method>-seed<N>``) in the W&B project :func:`project`, its id and
    the last step it holds kept in the run folder, so that a resumed run continues the same W&B
    run and logs no step twice (offline, W&B cannot say what it holds; online it would). Its files:
    ``$WANDB_DIR``, else ``<output_dir>/wandb/``; online or offline as ``WANDB_MODE`` says."""

    name = "wandb"
    package = "wandb"

    def __init__(self, config: RunConfig, folder: Path) -> None:
        self.state = folder / STATE_FILE
        known = read_state(self.state).get(self.name)
        self.run_id = known["id"] if known else new_id()
        self.last_step = int(known.get("last_step", -1)) if known else -1
        self.run = open_run(config, self.run_id, run_name(config), config_params(config))
        self._remember()

    def _remember(self) -> None:
        write_state(self.state, self.name, {"id": self.run_id, "last_step": self.last_step})

    # Parameters go in with wandb.init (its config).

    def log_series(self, step: int, values: dict[str, float]) -> None:
        self.run.log(finite(values), step=step)
        if step > self.last_step:
            self.last_step = step
            self._remember()

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None:
        import wandb  # lazy: the wandb extra

        values = finite(summary_values(summary))
        self.run.log(values, step=step)
        self.run.summary.update(values)
        if files:
            artifact = wandb.Artifact(f"run-files-{self.run_id}", type="run-files")
            for path in files:
                artifact.add_file(str(path))
            self.run.log_artifact(artifact)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)

    @staticmethod
    def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
        import wandb  # lazy: the wandb extra

        table_file, files, _ = TABLES[kind]
        state, key = experiment_dir / STATE_FILE, f"wandb-{kind}"
        run_id = read_state(state).get(key, {}).get("id") or new_id()
        write_state(state, key, {"id": run_id})
        run = open_run(config, run_id, kind, None)
        try:
            run.notes = (experiment_dir / table_file).read_text()  # the run's description in W&B
            artifact = wandb.Artifact(f"{kind}-{run_id}", type=kind)
            for name in files:
                if (experiment_dir / name).is_file():
                    artifact.add_file(str(experiment_dir / name))
            run.log_artifact(artifact)
        finally:
            run.finish()

    @staticmethod
    def log_evaluation(config: RunConfig, folder: Path, values: dict[str, float], step: int) -> None:
        import wandb  # lazy: the wandb extra

        known = read_state(folder / STATE_FILE).get(WandbTracker.name)
        if not known:
            raise ValueError("the run has no W&B run to add its evaluation to (trained without it)")
        run = open_run(config, known["id"], run_name(config), None)  # the run's own, continued
        try:
            run.log(finite(values), step=step)
            run.summary.update(finite(values))
            artifact = wandb.Artifact(f"evaluation-{known['id']}", type="run-files")
            artifact.add_file(str(folder / EVALUATION_FILE))
            run.log_artifact(artifact)
        finally:
            run.finish()


def new_id() -> str:
    """A W&B run id (lower-case letters and digits), ours: W&B's generator is not public API."""
    return secrets.token_hex(6)


def finite(values: dict[str, float]) -> dict[str, float]:
    """The finite values: a diverged run's NaN would break W&B's charts."""
    return {key: value for key, value in values.items() if math.isfinite(value)}


def open_run(config: RunConfig, run_id: str, name: str, params: dict[str, Any] | None) -> Any:
    """``wandb.init`` of run ``run_id`` (continued where it exists) in the config's project, each a
    run of its own (seeds trained side by side in one process keep theirs), quiet, without system
    statistics or the console's copy."""
    import wandb  # lazy: the wandb extra

    folder = Path(os.environ.get("WANDB_DIR") or config.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, save_code=False)
    return wandb.init(
        project=project(config),
        id=run_id,
        name=name,
        config=params,
        dir=str(folder),
        resume="allow",
        reinit="create_new",
        settings=settings,
    )
