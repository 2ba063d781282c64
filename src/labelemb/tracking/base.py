"""What every tracker shares: the names of the files it keeps, what a run sends it (its config
as flat parameters, its series, its summary), where it goes (project and run name), and the
:class:`Tracker` a tracker module fills in."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..registry import Registry
from ..rundir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, write_text

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
#: The run files a tracker with artifacts receives when the run finishes (figures too, if any).
RUN_FILES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE)
#: Where TensorBoard gets a run's evaluation: a folder of its own in the run's, rewritten whole
#: when the run is evaluated anew.
EVALUATION_TENSORBOARD = "evaluation"
#: The prefix of the evaluation's figures in every tracker (``eval/selective_msp_aurc``).
EVALUATION_PREFIX = "eval/"
COMPARISON_FILES = ("comparison.md", "comparison.csv", "curves.png", "curves-seconds.png", "curves-flops.png")
TUNING_FILES = ("tuning.md", "tuning.json", "tuning-history.png")


class TrackerWarning(UserWarning):
    """A tracker failed; the run went on without it."""


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


def evaluation_values(record: dict[str, Any]) -> dict[str, float]:
    """A run's ``evaluation.json`` as flat figures: ``eval/<figure>`` of its test split
    (``eval/selective_msp_aurc``, ``eval/conformal_aps_set_size``) and ``eval/ood/<set>/<figure>`` of
    each out-of-distribution set (``eval/ood/mnist/ood_energy_auroc``); the risk-coverage curve
    (a list) and what the record was computed from are left out."""
    values = numeric_values(record.get("test", {}), prefix=EVALUATION_PREFIX)
    for name, held in record.get("ood", {}).items():
        values.update(numeric_values(held.get("figures", {}), prefix=f"{EVALUATION_PREFIX}ood/{name}/"))
    return values


def project(config: RunConfig) -> str:
    """The tracker's experiment (MLflow) or project (Trackio): the experiment's first folder, so
    that a tune's trials (``<experiment>/tuning/trial000``) sit beside its runs, not in projects of
    their own."""
    return config.experiment.split("/")[0]


def run_name(config: RunConfig) -> str:
    """``<method>-seed<N>``, after the experiment's inner folders (``tuning/trial000/onehot-seed0``)."""
    inner = config.experiment.split("/")[1:]
    return "/".join([*inner, f"{config.method.name}-seed{config.seed}"])


def read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged state file: the tracker starts a new run rather than failing this one


def write_state(path: Path, key: str, value: dict[str, Any]) -> None:
    state = read_state(path)
    state[key] = value
    write_text(path, json.dumps(state, indent=2) + "\n")


#: The tables ``compare`` and ``tune`` write beside their runs: (table, files logged with it, the run
#: folders it nests, as globs under the experiment folder).
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "comparison": ("comparison.md", COMPARISON_FILES, ("*/seed*",)),
    # The default runs, the tuned runs and the trials that chose them.
    "tuning": ("tuning.md", TUNING_FILES, ("*/seed*", "tuned/*/*/seed*", "tuning/*/*/seed*")),
}

#: The trackers ``train.log_to`` can name (Hugging Face's ``report_to`` names): each tracker's class,
#: registered with ``@TRACKERS.register(name)`` beside it.
TRACKERS: Registry[type[Tracker]] = Registry("tracker")


class Tracker:
    """One tracker's view of one run. ``last_step`` is the last step the tracker already holds
    (found in its own store on resume): records up to it are not logged again."""

    name = ""
    #: The package it needs, checked before any training (:func:`labelemb.tracking.require`).
    package = ""
    last_step = -1

    def log_params(self, params: dict[str, str | int | float | bool]) -> None: ...

    def log_series(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, summary: dict[str, Any], step: int, files: list[Path]) -> None: ...

    def close(self, failed: bool) -> None: ...

    @staticmethod
    def log_table(config: RunConfig, experiment_dir: Path, kind: str) -> None:
        """``compare``'s or ``tune``'s table (``kind``, a key of :data:`TABLES`) beside its runs."""
        raise NotImplementedError

    @staticmethod
    def log_evaluation(config: RunConfig, folder: Path, values: dict[str, float], step: int) -> None:
        """A finished run's evaluation (:func:`evaluation_values` of its ``evaluation.json``, whose
        file is in ``folder``) to the tracker's record of the run, at ``step`` (its summary's)."""
        raise NotImplementedError

    def log_records(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["step"] > self.last_step:
                self.log_series(record["step"], record_series(record))
                self.last_step = record["step"]


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
