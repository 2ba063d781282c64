"""Tuning: every method gets the same number of Optuna trials, then its best setting trains on fresh seeds.

One Optuna study per method, all kept in one store: a journal file in the experiment folder
(``<experiment>/tuning/study.journal``, no server) or a database URL that many machines share
(``--storage``). A trial is one run of the method on the tuning seed, with the values Optuna's
seeded TPE sampler draws from the method's search space (:func:`labelemb.methods.search_space`)
and the command line's keys; its objective is the run's dev score at its selected check, in the
task's own direction (lower dev error, higher BLEU). Trials go to the grid's executors (local
processes, devices or a Ray cluster: :mod:`labelemb.sweep.executors`) a round at a time: as many
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
the same run folder (:mod:`~labelemb.tuning.owner` says how a driver tells a dead process from a
live one; ``retry_running`` closes every trial left running when a driver starts, for a study
whose drivers died elsewhere or was copied from another machine). The sampler is re-seeded
each round from the tuning seed, the method and the number of trials asked so far, so a study
continued between rounds (a larger ``--trials``) draws
what an uninterrupted one would have drawn.

With ``prune``, a trial reports its value so far at every check (:class:`~labelemb.tuning.trial.Pruning`)
and a median pruner stops it when
it is worse than the median of earlier trials at the same check; its run stays unfinished.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..assembly import plan_run
from ..rundir import RunDir, differing_keys
from ..search_spaces import import_optuna
from ..sweep.executors import Executor, Unit
from .owner import current_owner, is_alive, runs_here
from .setting import TuneSetting, default_values, setting_record, trial_config
from .trial import TrialJob, TuneError, median_pruner, open_storage, without_password

#: Trials finished for the budget: pruned ones count, as they cost their share of it.
FINISHED_STATES = ("COMPLETE", "PRUNED")


#: Trials that hold a place in the budget (up to it): finished, training, or queued to train.
PLACE_STATES = (*FINISHED_STATES, "RUNNING", "WAITING")


#: The trials TPE draws at random before it models the results (Optuna's default, made explicit
#: because the tuning table says when a budget ends within them).
STARTUP_TRIALS = 10


#: How often a driver whose budget is taken by another driver's running trials looks again.
WAIT_SECONDS = 2.0


def sampler_seed(tune_seed: int, method: str, trials_so_far: int) -> int:
    """The sampler's seed for a round: the same for the same study at the same point, resumed or not."""
    digest = hashlib.sha256(f"{tune_seed}:{method}:{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class Tuner:
    """Runs the studies of a :class:`TuneSetting` through an executor (see the module's text)."""

    def __init__(
        self, setting: TuneSetting, executor: Executor, slots: int, retry_running: bool = False
    ) -> None:
        self.setting = setting
        #: Whether the trials other drivers left running when this one starts are dead: closed and
        #: asked again here (``tune --retry-running``), whoever and wherever their driver was.
        self.retry_running = retry_running
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
        self._retry_orphans(study, everyone=self.retry_running)
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
            count = min(self.slots * self.setting.batched_trials, free)
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
        trial.set_user_attr("owner", current_owner())
        return trial

    def _run_round(self, study: Any, method: str, trials: list[Any]) -> None:
        configs = [trial_config(self.setting, method, t.params, run_number(t)) for t in trials]
        plans = [plan_run(config) for config in configs]  # what each trial's worker trains
        together = self.setting.batched_trials
        # Each unit: one trial, or batched_trials trials trained together in one process.
        chunks = [list(range(i, min(i + together, len(trials)))) for i in range(0, len(trials), together)]
        units = []
        for chunk in chunks:
            if len(chunk) > 1:
                units.append(Unit.of([plans[i] for i in chunk], batched=True))
                continue
            trial = trials[chunk[0]]
            ref = TrialJob(self.setting.storage_text, study.study_name, trial.number, self.dev_keys)
            units.append(Unit.of([plans[chunk[0]]], job=ref if self.setting.prune else None))

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

    def _retry_orphans(self, study: Any, everyone: bool = False) -> None:
        """Close the trials a dead ``tune`` on this machine left running (or, with ``everyone``,
        every running trial), and ask them again with the same values, training on from their
        run folders."""
        TrialState = self.optuna.trial.TrialState
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = trial.user_attrs.get("owner", {})
            if not everyone and (not runs_here(owner) or is_alive(owner)):
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


def run_number(trial: Any) -> int:
    """The trial whose run folder a trial trains in: its own, or the one it retries."""
    return int(trial.user_attrs.get("run", trial.number))


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
