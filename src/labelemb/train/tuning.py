"""Tuning: every method gets the same number of Optuna trials, then its best setting trains on fresh seeds.

One Optuna study per method, all kept in one store: a journal file in the experiment folder
(``<experiment>/tuning/study.journal``, no server) or a database URL that many machines share
(``--storage``). A trial is one run of the method on the tuning seed, with the values Optuna's
seeded TPE sampler draws from the method's search space (:func:`labelemb.methods.search_space`)
and the command line's keys; its objective is the run's dev score at its selected check, in the
task's own direction (lower dev error, higher BLEU). Trials go to the grid's executors (local
processes, devices or a Ray cluster: :mod:`labelemb.train.executors`) a round at a time: as many
trials of one method as the executor has slots, asked from the study together (the sampler's
constant liar keeps them apart).

A method's first trial is its default setting (enqueued with the config's values of the searched
keys; a value outside its range is clamped to the nearest bound, one the space cannot hold is
drawn), so the tuned setting is never worse than the default on the tuning seed's dev score.

The budget is the study's, not a driver's: the trials that hold a place in it are, in order of
number, those not failed, up to ``--trials`` (:func:`within_budget`). A driver asks only the places
left, and a trial it asked that another driver's got first is closed as failed before it trains;
a driver whose places are all taken by another driver's running trials waits for them.

A trial's run folder is ``<experiment>/tuning/trial<NNN>/<method>/seed<S>`` and, like every run,
resumes from its checkpoint. A killed ``tune`` resumes where it stopped: finished trials are
read from the study and not trained again, and a trial its (dead) process left running is
closed as failed and asked again with the same values (Optuna's retry pattern), training on from
the same run folder. The sampler is re-seeded each round from the tuning seed, the method and the
number of trials asked so far, so a study continued between rounds (a larger ``--trials``) draws
what an uninterrupted one would have drawn.

With ``prune``, a trial reports its dev score at every check and a median pruner stops it when
it is worse than the median of earlier trials at the same check; its run stays unfinished.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import methods
from ..rundir import RunDir, differing_keys
from ..search import Space, SpaceError, check_space, combine, import_optuna
from .config import RunConfig, config_keys
from .executors import Executor, Unit
from .options import RUN_CONTEXT_OPTIONS, check_buildable, no_method_takes
from .trial_run import TrialRef, TuneError, median_pruner, open_storage, without_password

#: The folder of an experiment that holds its trials and its study (``<experiment>/tuning``).
TUNING_FOLDER = "tuning"
#: The folder of an experiment that holds its tuned settings' runs (``<experiment>/tuned``).
TUNED_FOLDER = "tuned"
JOURNAL_FILE = "study.journal"
#: Trials finished for the budget: pruned ones count, as they cost their share of it.
FINISHED_STATES = ("COMPLETE", "PRUNED")
#: Trials that hold a place in the budget (up to it): finished, training, or queued to train.
PLACE_STATES = (*FINISHED_STATES, "RUNNING", "WAITING")
#: The trials TPE draws at random before it models the results (Optuna's default, made explicit
#: because the tuning table says when a budget ends within them).
STARTUP_TRIALS = 10
#: ``tune --objective``: what a trial is judged on -> the dev record key (None: the task's own
#: dev score, :func:`~labelemb.tasks.dev_objective`). Both calibration figures: lower is better.
OBJECTIVES: dict[str, str | None] = {"metric": None, "nll": "dev_nll", "ece": "dev_ece_scaled"}
#: How often a driver whose budget is taken by another driver's running trials looks again.
WAIT_SECONDS = 2.0


@dataclass
class TuneSetting:
    """A tuning request: the experiment's config, its methods and what is searched.

    ``spaces`` are the command line's keys (a dotted config key applies to every method, a bare
    option to the methods that have it); ``tune_seed`` is the seed of every trial run and seeds the
    sampler; ``storage`` a database URL, or None for the journal file in the experiment folder.
    """

    base: RunConfig
    methods: list[str]
    trials: int
    spaces: dict[str, Space] = field(default_factory=dict)
    tune_seed: int = 0
    prune: bool = False
    storage: str | None = None
    #: What a trial is judged on (:data:`OBJECTIVES`): the task's dev score, or a calibration figure.
    objective_kind: str = "metric"
    #: Trials of a method trained side by side in one process (their settings stacked as seeds are;
    #: :class:`~labelemb.train.stacked.SideBySide`), per executor slot; 1: a process each.
    side_by_side: int = 1

    @property
    def folder(self) -> Path:
        """The experiment's tuning folder: its trials' runs and its journal."""
        return Path(self.base.output_dir) / self.base.experiment / TUNING_FOLDER

    @property
    def storage_text(self) -> str:
        """The study store as workers open it: the database URL, or the journal file's path."""
        return self.storage or str((self.folder / JOURNAL_FILE).resolve())

    def method_config(self, method: str) -> RunConfig:
        """The base config for ``method`` at the tuning seed (the default setting)."""
        config = self.base.with_method(method).with_seed(self.tune_seed)
        config._source_folder = self.base._source_folder
        return config

    def space(self, method: str) -> dict[str, Space]:
        """What a trial of ``method`` draws: its own space and the command line's keys that apply to it."""
        config = self.method_config(method)
        own = methods.search_space(method, config.options("method"))
        accepted = methods.options(method)
        given = {key: space for key, space in self.spaces.items() if "." in key or key in accepted}
        return combine(own, given)

    def study_name(self, method: str) -> str:
        return f"{self.base.experiment}:{method}"

    def objective(self) -> tuple[tuple[str, ...], bool]:
        """The dev score every trial is judged by (its record keys) and whether higher is better: the
        one that selects a run's check, as the experiment's task says
        (:func:`~labelemb.tasks.dev_objective`)."""
        from ..data.registry import dataset_yields
        from ..tasks import dev_objective, task_class

        yields = dataset_yields(self.base.data.name, self.base.data_sections())
        task = task_class(yields)
        if self.objective_kind == "metric":
            return dev_objective(task, self.base.selection_metric)
        key = OBJECTIVES[self.objective_kind]
        if key not in getattr(task, "selected_fields", ()):
            raise TuneError(
                f"--objective {self.objective_kind}: runs of {task.__name__} record no "
                f"{key.replace('_', ' ')} (a classifier's dev calibration); use --objective metric"
            )
        return (key,), False


def check_setting(setting: TuneSetting) -> None:
    """Refuse, before anything is written or trained, what cannot be tuned: one line a problem."""
    if setting.objective_kind not in OBJECTIVES:
        raise TuneError(f"--objective {setting.objective_kind}: choose one of {', '.join(OBJECTIVES)}")
    setting.objective()  # a calibration objective the task cannot give: one line, here
    if setting.trials < 1:
        raise TuneError(f"--trials {setting.trials}: give a positive number of trials, e.g. --trials 20")
    if setting.side_by_side > 1 and setting.prune:
        raise TuneError(
            "--prune stops trials one at a time, --side-by-side trains them together: use one of them"
        )
    keys = config_keys()
    bare = [key for key in setting.spaces if "." not in key and key not in keys]
    for key in bare:
        if not any(key in methods.options(method) for method in setting.methods):
            raise TuneError(f"--space {key}: {no_method_takes(key, setting.methods, keys)}")
    for method in setting.methods:
        config = setting.method_config(method)
        check_buildable(config)
        given = config.options("method")
        fixed_here = {k: v for k, v in given.items() if k not in RUN_CONTEXT_OPTIONS}
        build = methods.method_builder(method, **fixed_here)
        try:
            check_space(
                method,
                setting.space(method),
                keys,
                methods.options(method),
                fixed=methods.preset_options(method),
                run_context=RUN_CONTEXT_OPTIONS,
                build=build,
            )
        except SpaceError as error:
            raise TuneError(str(error)) from None
        _check_config_bounds(method, config, setting.space(method))


def _check_config_bounds(method: str, config: RunConfig, spaces: Mapping[str, Space]) -> None:
    """Each bound of a searched config key is a value the config accepts (``train.batch_size=0:64``
    is refused here, not in the trial that draws 0)."""
    from pydantic import ValidationError

    for key, space in spaces.items():
        if "." not in key and key not in RunConfig.model_fields:
            continue
        for bound in space.bounds():
            try:
                apply_values(config, {key: bound})
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                raise TuneError(
                    f"method {method!r}: --space {key}={space}: the config does not accept {key}={bound!r} "
                    f"({reason}); keep the range inside what {key} accepts"
                ) from None


def sampler_seed(tune_seed: int, method: str, trials_so_far: int) -> int:
    """The sampler's seed for a round: the same for the same study at the same point, resumed or not."""
    digest = hashlib.sha256(f"{tune_seed}:{method}:{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def setting_record(setting: TuneSetting, method: str) -> dict[str, Any]:
    """What a study's trials depend on, recorded with the study (as JSON holds it): the method's
    default config (its comparable part), the searched space, the tuning seed and pruning, and the
    content digest of the data where its loader has one (a user's files: an edited file makes the
    finished trials' scores stale)."""
    from ..data.registry import data_fingerprint
    from .build import data_request

    config = setting.method_config(method)
    record: dict[str, Any] = {
        "config": config.comparable(),
        "space": {key: str(space) for key, space in sorted(setting.space(method).items())},
        "tune_seed": setting.tune_seed,
        "prune": setting.prune,
    }
    if setting.objective_kind != "metric":
        # Only when not the default, so that studies recorded before the option still match.
        record["objective"] = setting.objective_kind
    fingerprint = data_fingerprint(config.data.name, data_request(config))
    if fingerprint is not None:
        record["data"] = fingerprint
    return json.loads(json.dumps(record))


class Tuner:
    """Runs the studies of a :class:`TuneSetting` through an executor (see the module's text)."""

    def __init__(self, setting: TuneSetting, executor: Executor, slots: int) -> None:
        self.setting = setting
        self.executor = executor
        self.slots = max(1, slots)
        self.dev_keys, self.higher = setting.objective()
        self.optuna = import_optuna()
        self.optuna.logging.set_verbosity(self.optuna.logging.WARNING)
        self.storage = open_storage(setting.storage_text)

    def check_studies(self) -> None:
        """Refuse, before any study is made or any trial trains, a method's study that was recorded
        for another setting (reading the store only)."""
        for method in self.setting.methods:
            if not self.setting.space(method):
                continue  # nothing searched: no study
            name = self.setting.study_name(method)
            try:
                study_id = self.storage.get_study_id_from_name(name)
            except KeyError:
                continue  # a new study
            recorded = self.storage.get_study_user_attrs(study_id).get("setting")
            self._check_record(name, recorded, setting_record(self.setting, method))

    def _check_record(self, name: str, recorded: Any, record: dict[str, Any]) -> None:
        if recorded is not None and recorded != record:
            keys = ", ".join(sorted(differing_keys(recorded, record))[:5])
            raise TuneError(
                f"study {name!r} in {without_password(self.setting.storage_text)} was tuned with "
                f"another setting (differs in {keys}); tune under a new experiment name "
                "(experiment=...), or remove that study to start it again"
            )

    def study(self, method: str) -> Any:
        """The method's study, made or loaded; a study recorded for another setting is refused."""
        optuna = self.optuna
        name = self.setting.study_name(method)
        study = optuna.create_study(
            study_name=name,
            storage=self.storage,
            direction="maximize" if self.higher else "minimize",
            pruner=self.pruner(),
            load_if_exists=True,
        )
        record = setting_record(self.setting, method)
        recorded = study.user_attrs.get("setting")
        self._check_record(name, recorded, record)
        if recorded is None:
            study.set_user_attr("setting", record)
        return study

    def pruner(self) -> Any:
        return median_pruner(self.optuna) if self.setting.prune else self.optuna.pruners.NopPruner()

    def tune(
        self,
        method: str,
        on_round: Callable[[str, int, int], None] | None = None,
        on_wait: Callable[[str, list[Any]], None] | None = None,
    ) -> Any:
        """Run ``method``'s trials until the study's budget is spent, by this driver or by others
        on the same study; its study. ``on_wait`` is told once when this driver waits for the
        running trials of another."""
        budget = self.setting.trials
        study = self.study(method)
        self._retry_orphans(study)
        self._enqueue_default(study, method)
        waiting = False
        while True:
            self._retry_orphans(study)
            trials = study.get_trials(deepcopy=False)
            places = within_budget(trials, budget)
            done = sum(t.state.name in FINISHED_STATES for t in places)
            if done >= budget:
                return study
            # Every trial this driver asked has been told by now: the running ones are another's.
            running = [t for t in places if t.state.name == "RUNNING"]
            free = budget - done - len(running)
            if free <= 0:
                if on_wait is not None and not waiting:
                    on_wait(method, running)
                waiting = True
                time.sleep(WAIT_SECONDS)
                continue
            waiting = False
            # Seeded from the trials asked so far (a queued one is not asked yet), so that a
            # study resumed between rounds draws what an uninterrupted one draws.
            study.sampler = self._sampler(method, sum(t.state.name != "WAITING" for t in trials))
            count = min(self.slots * self.setting.side_by_side, free)
            asked = self._keep_to_budget(study, [self._ask(study, method) for _ in range(count)])
            if asked:
                self._run_round(study, method, asked)
                if on_round is not None:
                    on_round(method, done + len(asked), budget)

    def _enqueue_default(self, study: Any, method: str) -> None:
        """Queue the method's default setting as a trial, unless the study has one or its budget
        is spent (a study tuned before defaults were trials gets it as its next trial)."""
        trials = study.get_trials(deepcopy=False)
        if any(t.user_attrs.get("default") and t.state.name != "FAIL" for t in trials):
            return
        if len(within_budget(trials, self.setting.trials)) >= self.setting.trials:
            return
        values, adjusted = default_values(self.setting, method)
        study.enqueue_trial(values, user_attrs={"default": True, "adjusted": adjusted})

    def _keep_to_budget(self, study: Any, asked: list[Any]) -> list[Any]:
        """The asked trials that hold a place in the budget; the others (another driver asked the
        last places first) are closed as failed, untrained."""
        places = {t.number for t in within_budget(study.get_trials(deepcopy=False), self.setting.trials)}
        kept = []
        for trial in asked:
            if trial.number in places:
                kept.append(trial)
                continue
            trial.set_user_attr("over_budget", True)
            study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        return kept

    def _sampler(self, method: str, trials_so_far: int) -> Any:
        seed = sampler_seed(self.setting.tune_seed, method, trials_so_far)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
            return self.optuna.samplers.TPESampler(
                seed=seed, constant_liar=True, n_startup_trials=STARTUP_TRIALS
            )

    def _ask(self, study: Any, method: str) -> Any:
        trial = study.ask()
        for key, space in sorted(self.setting.space(method).items()):
            space.suggest(trial, key)
        trial.set_user_attr("owner", _owner())
        return trial

    def _run_round(self, study: Any, method: str, trials: list[Any]) -> None:
        configs = [trial_config(self.setting, method, t.params, run_number(t)) for t in trials]
        together = self.setting.side_by_side
        # Each unit: one trial, or side_by_side trials trained together in one process.
        chunks = [list(range(i, min(i + together, len(trials)))) for i in range(0, len(trials), together)]
        units = []
        for chunk in chunks:
            if len(chunk) > 1:
                units.append(Unit.of([configs[i] for i in chunk], batched=True))
                continue
            trial = trials[chunk[0]]
            ref = TrialRef(self.setting.storage_text, study.study_name, trial.number, self.dev_keys)
            units.append(Unit.of([configs[chunk[0]]], trial=ref if self.setting.prune else None))

        def finished(u: int, summaries: list[dict[str, Any]]) -> None:
            for i, summary in zip(chunks[u], summaries):
                if summary.get("pruned"):
                    study.tell(trials[i].number, state=self.optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trials[i].number, objective(summary, self.dev_keys))
                    # A trial is read for its numbers only; its optimiser state would fill disks
                    # (120 MB a trial of the bag of words on debian-sections).
                    RunDir(configs[i].run_dir()).drop_checkpoint()

        self.executor.run(units, finished)

    def _retry_orphans(self, study: Any) -> None:
        """Close the trials a dead ``tune`` on this machine left running, and ask them again with
        the same values, training on from their run folders."""
        TrialState = self.optuna.trial.TrialState
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = trial.user_attrs.get("owner", {})
            if owner.get("host") != socket.gethostname() or _alive(owner.get("pid")):
                continue  # another machine's or a live process's trial: left to it
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except RuntimeError:
                continue  # another driver closed it first, and asks it again
            kept = {key: trial.user_attrs[key] for key in ("default", "adjusted") if key in trial.user_attrs}
            study.enqueue_trial(trial.params, user_attrs={**kept, "run": run_number(trial)})


def within_budget(trials: Sequence[Any], budget: int) -> list[Any]:
    """The trials that hold a place in a study's budget of ``budget``: in order of number, each
    finished, running or queued one, up to the budget. A second default trial (two drivers queued
    it at once) holds none. Trial numbers are handed out by the store, so every driver, on any
    machine, reads the same places."""
    places: list[Any] = []
    default_seen = False
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state.name not in PLACE_STATES:
            continue
        if trial.user_attrs.get("default"):
            if default_seen:
                continue
            default_seen = True
        if len(places) < budget:
            places.append(trial)
    return places


def default_values(setting: TuneSetting, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values of ``method``'s default setting for its searched keys, as a trial takes them, and
    what was changed to fit the space: ``{key: {"default": value, "used": value or None}}``. A
    number outside its range is clamped to the nearest bound (the searched range is where the user
    asked trials to be); a value the space cannot hold (None, a choice not listed) is left out, and
    the sampler draws it."""
    config = setting.method_config(method)
    raw = config.model_dump(mode="json")
    own = {**methods.options(method), **config.options("method")}
    values: dict[str, Any] = {}
    adjusted: dict[str, Any] = {}
    for key, space in sorted(setting.space(method).items()):
        if "." in key or key in RunConfig.model_fields:
            default = raw
            for part in key.split("."):
                default = default.get(part) if isinstance(default, dict) else None
        else:
            default = own.get(key)
        if default in space:
            values[key] = default
            continue
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if space.kind == "categorical" or not numeric:
            adjusted[key] = {"default": default, "used": None}
            continue
        used = min(max(default, space.low), space.high)
        used = int(round(used)) if space.kind == "int" else float(used)
        values[key] = used
        adjusted[key] = {"default": default, "used": used}
    return values, json.loads(json.dumps(adjusted))


def run_number(trial: Any) -> int:
    """The trial whose run folder a trial trains in: its own, or the one it retries."""
    return int(trial.user_attrs.get("run", trial.number))


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def objective(summary: Mapping[str, Any], dev_keys: Sequence[str]) -> float:
    """A finished trial run's objective: its dev score at its selected check."""
    value = next(
        (summary[f"selected_{k}"] for k in dev_keys if summary.get(f"selected_{k}") is not None), None
    )
    if value is None:
        raise TuneError(
            f"run {summary.get('method')} seed {summary.get('seed')} has no {' or '.join(dev_keys)} at its "
            "selected check: tuning needs a dev split (data with a dev split, or one split off train)"
        )
    return float(value)


def apply_values(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``config`` with each value set: a dotted key in its section, a bare one as a method option."""
    raw = config.model_dump(mode="json")
    for key, value in values.items():
        parts = key.split(".") if "." in key or key in RunConfig.model_fields else ["method", key]
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    changed = RunConfig.model_validate(raw)
    changed._source_folder = config._source_folder
    return changed


def trial_config(setting: TuneSetting, method: str, values: Mapping[str, Any], number: int) -> RunConfig:
    """The config of trial ``number`` of ``method``: its values over the default, in its own folder."""
    config = apply_values(setting.method_config(method), values)
    experiment = f"{setting.base.experiment}/{TUNING_FOLDER}/trial{number:03d}"
    changed = config.model_copy(update={"experiment": experiment})
    changed._source_folder = config._source_folder
    return changed


def tuned_experiment(experiment: str, best_trial: int) -> str:
    """Where the best setting's fresh runs go: ``<experiment>/tuned/trial<NNN>``, named after the
    trial whose values they train with, so that a later, larger budget whose best is another trial
    writes beside them instead of meeting runs of another config."""
    return f"{experiment}/{TUNED_FOLDER}/trial{best_trial:03d}"


def tuned_config(
    setting: TuneSetting, method: str, values: Mapping[str, Any], best_trial: int, seed: int
) -> RunConfig:
    """The config of ``method``'s best setting (trial ``best_trial``'s values) at fresh ``seed``."""
    config = apply_values(setting.method_config(method), values).with_seed(seed)
    experiment = tuned_experiment(setting.base.experiment, best_trial)
    changed = config.model_copy(update={"experiment": experiment})
    changed._source_folder = setting.base._source_folder
    return changed


def study_record(study: Any, setting: TuneSetting, method: str) -> dict[str, Any]:
    """A method's study as plain JSON for ``tuning.json``: what was searched, every trial (its
    number, state, dev score, values and run folder) and the best trial; the report reads this,
    not the study."""
    trials = []
    adjusted: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        default = bool(trial.user_attrs.get("default"))
        if default and trial.state.name != "FAIL":
            adjusted = trial.user_attrs.get("adjusted", {})
        trials.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "params": dict(trial.params),
                "run": run_number(trial),
                "checks": {str(step): value for step, value in sorted(trial.intermediate_values.items())},
                "default": default,
                "over_budget": bool(trial.user_attrs.get("over_budget")),
            }
        )
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = study.best_trial if complete else None
    best_is_default = (
        best is not None and bool(best.user_attrs.get("default")) and not best.user_attrs.get("adjusted")
    )
    return {
        "study": study.study_name,
        "space": {key: str(space) for key, space in sorted(setting.space(method).items())},
        "trials": trials,
        "best_trial": None if best is None else best.number,
        "best_value": None if best is None else best.value,
        "best_params": {} if best is None else dict(best.params),
        # The best is the default setting itself (its fresh runs give the default's numbers).
        "best_is_default": best_is_default,
        "default_adjusted": adjusted,
    }
