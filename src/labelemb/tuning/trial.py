"""A tuning trial's run, as a worker trains it: reporting its checks to its study (``--prune``).

Kept apart from :mod:`labelemb.tuning.study` (which plans the trials and hands them to the grid's
executors as :class:`TrialJob` s, plain data a worker unpickles), so that a worker imports only what
trains one trial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..callbacks import Callback
from ..search_spaces import import_optuna
from ..training import train

if TYPE_CHECKING:
    from ..assembly import RunPlan


class TuneError(ValueError):
    """A tuning request that cannot run (its space, its storage, its seeds); one line a problem."""


@dataclass(frozen=True)
class TrialJob:
    """What a worker needs to report a trial's checks to its study (``--prune``): a unit of the
    grid's work carries it (:class:`labelemb.sweep.executors.Job`)."""

    storage: str  # the journal file's path or a database URL
    study: str
    number: int
    dev_keys: tuple[str, ...]  # the dev score's record key: the first of these a record holds

    def run(self, plans: list[RunPlan]) -> list[dict[str, Any]]:
        """Train the trial's one run in this process (:func:`train_trial`)."""
        return train_trial(self, plans[0])


def open_storage(storage: str) -> Any:
    """The Optuna store ``storage`` names: a database URL (``sqlite:///tune.db``,
    ``postgresql://host/db``) or a journal file's path. A store that does not answer is a
    :class:`TuneError` of one line."""
    optuna = import_optuna()
    if "://" not in storage:
        from optuna.storages.journal import JournalFileBackend  # lazy: the tune extra

        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        check_journal(storage)
        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    try:
        return optuna.storages.RDBStorage(storage, engine_kwargs=_engine_kwargs(storage))
    except ImportError as error:  # SQLAlchemy found no driver for the URL's database
        raise TuneError(
            f"--storage {without_password(storage)} needs its database's Python driver ({error}); "
            "pip install it (psycopg2-binary for postgresql://, PyMySQL for mysql+pymysql://)"
        ) from None
    except Exception as error:  # the driver's own error types: a refused connection, a bad path
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TuneError(
            f"--storage {without_password(storage)} does not answer ({reason}); give a database "
            "URL that is up (sqlite:///path/tune.db, postgresql://user@host/db), or leave --storage "
            "out to keep the study in the experiment folder"
        ) from None


def check_journal(path: str | Path) -> None:
    """Refuse a damaged journal file in one line: which record, and the way out.

    Optuna reads past a last line without its newline (a write it takes for one in progress) and
    then appends its next record to it, gluing the two into one broken line; a bad line elsewhere
    is a raw ``json`` error with the wrong line number. So the file is read before Optuna opens it,
    under the lock Optuna's writers take, so that another driver's write in progress is not taken
    for a cut one.
    """
    from optuna.storages.journal import JournalFileSymlinkLock  # lazy: the tune extra

    path = Path(path)
    if not path.exists():
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        lines = path.read_bytes().split(b"\n")
    finally:
        lock.release()
    where = f"the study journal {path.resolve()} is damaged"
    if lines[-1]:
        raise TuneError(
            f"{where}: the last record (line {len(lines)}) is cut short (a write was interrupted); "
            "delete that partial line to keep the finished trials, or move the journal aside (or "
            "delete it) to start the studies again"
        )
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise TuneError(
                f"{where}: line {number} is not a JSON record; move the journal aside (or delete it) "
                "to start the studies again, or repair that line"
            )


def _engine_kwargs(url: str) -> dict[str, Any]:
    """A server that is down should fail in seconds, not after the driver's default wait."""
    if url.startswith(("postgresql", "mysql")):
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


def median_pruner(optuna: Any) -> Any:
    """``--prune``'s pruner, in the driver and in every worker alike (a study does not store it)."""
    # The first check of a run says little of where it ends: judge from the second check on, and
    # only once five trials have set a median.
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def train_trial(ref: TrialJob, plan: RunPlan) -> list[dict[str, Any]]:
    """Train a trial's run in this process, reporting its value so far to the study at every check;
    a pruned trial's summary is ``{"pruned": True, ...}`` (its run stays unfinished)."""
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=ref.study,
        storage=open_storage(ref.storage),
        pruner=median_pruner(optuna),
    )
    trial = optuna.trial.Trial(study, _trial_id(study, ref.number))
    try:
        return [train(plan, callbacks=[Pruning(trial, ref.dev_keys, optuna.TrialPruned)])]
    except optuna.TrialPruned:
        return [{"pruned": True, "method": plan.config.method.name, "seed": plan.config.seed}]


class Pruning(Callback):
    """``--prune`` as the trainer's callback: at every check, the trial's objective so far reported
    to the trial, which raises ``pruned`` (Optuna's ``TrialPruned``) when its pruner says stop.

    The objective so far is the newest check's that records it: the dev score of every check, and
    the dev calibration or AURC (``--objective nll|ece|aurc``) of the check that is selected now,
    since a classifier records them only at checks that can be selected (each beats every earlier
    one)."""

    def __init__(self, trial: Any, dev_keys: tuple[str, ...], pruned: type[BaseException]) -> None:
        self.trial, self.dev_keys, self.pruned = trial, dev_keys, pruned

    def on_check(self, runs: list[Any]) -> None:
        records = runs[0].progress.records
        recorded = (record.get(key) for record in reversed(records) for key in self.dev_keys)
        value = next((value for value in recorded if value is not None), None)
        if value is None:
            return
        self.trial.report(float(value), step=len(records) - 1)
        if self.trial.should_prune():
            raise self.pruned()


def _trial_id(study: Any, number: int) -> int:
    """The storage's id of trial ``number`` (what ``optuna.trial.Trial`` is opened with)."""
    trial = study.get_trials(deepcopy=False)[number]
    return trial._trial_id  # FrozenTrial exposes the id only under this name
