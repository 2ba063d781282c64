"""Many runs at once: every (method, seed) of a comparison, on this machine's processes or devices,
or on a Ray cluster (:mod:`labelemb.sweep.executors`)."""

from __future__ import annotations

import sys
from itertools import groupby
from typing import Any

from tqdm.auto import tqdm

from ..assembly import RunPlan
from ..config import RunConfig
from ..progress import draws_bar
from ..training import RunHeld, plan_runs, train
from .executors import Executor, LocalExecutor, Unit
from .failures import FailedRun, Failure, RunsFailed


def run_grid(
    configs: list[RunConfig],
    *,
    jobs: int = 1,
    progress: bool = True,
    batched: bool = False,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Train every config that has no finished run yet and return all summaries, in order.

    Finished runs are read back, so an interrupted comparison resumes where it stopped (and a
    half-done run resumes from its checkpoint). Every config is checked before any run starts.
    Runs go to ``executor`` (default: :class:`~labelemb.sweep.executors.LocalExecutor` with
    ``jobs`` processes), one unit of work per run, or per method with ``batched`` (its seeds side
    by side, :mod:`labelemb.training.stacked`); one bar (or one line per finished unit) counts them.
    In this process alone (one job, not batched), a run another process is training is left to it
    and read back once it is done. A run that fails (a missing package, an out-of-memory, a bug)
    is recorded with its one-line reason and the others go on; once all are done,
    :class:`~labelemb.sweep.failures.RunsFailed` lists the failed runs and holds the others'
    summaries.
    """
    executor = executor or LocalExecutor(jobs=jobs)
    here = _in_this_process(executor)  # (its devices checked, before anything runs)
    if batched and here:
        return _outcome(configs, *_batched_here(configs, progress))
    quiet = [c.model_copy(update={"train": c.train.model_copy(update={"progress": False})}) for c in configs]
    # Every run checked here, before any trains; a device by the machines that train it: this
    # one's for the local executor, a Ray cluster's by its executor once connected.
    plans = plan_runs(quiet, devices_here=isinstance(executor, LocalExecutor))
    todo = [i for i, plan in enumerate(plans) if not plan.folder.is_finished()]
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    for i in set(range(len(configs))) - set(todo):
        summaries[i] = train(plans[i])  # finished: returns the saved summary
    failures: dict[int, Failure] = {}
    with RunCounter(len(configs), len(configs) - len(todo), progress) as counter:
        if here:
            _train_here(plans, todo, summaries, failures, counter)
        else:
            groups = _units(todo, quiet, batched)
            # The workers train the units' plans as checked: they were, here.
            units = [Unit.of([plans[i] for i in group], batched=batched) for group in groups]

            def finished(u: int, unit_summaries: list[dict[str, Any]]) -> None:
                for i, summary in zip(groups[u], unit_summaries):
                    summaries[i] = summary
                    counter.finished(quiet[i])

            def failed(u: int, failure: Failure) -> None:
                for i in groups[u]:
                    failures[i] = failure
                    counter.failed(quiet[i], failure)

            executor.run(units, finished, failed)
    return _outcome(configs, summaries, failures)


def _outcome(
    configs: list[RunConfig], summaries: list[dict[str, Any] | None], failures: dict[int, Failure]
) -> list[dict[str, Any]]:
    """The grid's summaries, in order; :class:`RunsFailed` with them where runs failed."""
    done = [s for s in summaries if s is not None]
    if failures:
        raise RunsFailed([_failed_run(configs[i], failure) for i, failure in sorted(failures.items())], done)
    return done


def _failed_run(config: RunConfig, failure: Failure) -> FailedRun:
    return FailedRun(f"{config.method.name} seed {config.seed}", str(config.run_dir()), failure.reason)


def _batched_here(
    configs: list[RunConfig], progress: bool
) -> tuple[list[dict[str, Any] | None], dict[int, Failure]]:
    """Each method's seeds side by side in this process, with a bar per method, all checked
    first; a method whose runs fail is said in one line a run and the next method goes on."""
    plans = plan_runs(configs)
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    failures: dict[int, Failure] = {}
    methods = list(dict.fromkeys(config.method.name for config in configs))
    for method in methods:
        group = [i for i, config in enumerate(configs) if config.method.name == method]
        try:
            trained = train([plans[i] for i in group], progress=progress)
        except Exception as error:
            for i in group:
                failures[i] = Failure.of(error)
                print(f"failed {configs[i].run_dir()}: {failures[i].reason}", file=sys.stderr, flush=True)
            continue
        for i, summary in zip(group, trained):
            summaries[i] = summary
    return summaries, failures


def _in_this_process(executor: Executor) -> bool:
    return isinstance(executor, LocalExecutor) and executor.slots() == [None]


def _units(todo: list[int], configs: list[RunConfig], batched: bool) -> list[list[int]]:
    """The runs of each unit of work: one each, or each method's together when batched."""
    if not batched:
        return [[i] for i in todo]
    by_method = sorted(todo, key=lambda i: (configs[i].method.name, i))
    return [list(group) for _, group in groupby(by_method, key=lambda i: configs[i].method.name)]


def _train_here(
    plans: list[RunPlan],
    todo: list[int],
    summaries: list[dict[str, Any] | None],
    failures: dict[int, Failure],
    counter: RunCounter,
) -> None:
    """Train ``todo`` in this process, one after another; a run that fails is recorded in
    ``failures`` and the next goes on."""
    held = []
    for i in todo:
        counter.starting(plans[i].config)
        try:
            summaries[i] = train(plans[i], wait_for_held=False)
        except RunHeld:
            held.append(i)  # another process trains it: come back to it at the end
            continue
        except Exception as error:
            failures[i] = Failure.of(error)
            counter.failed(plans[i].config, failures[i])
            continue
        counter.finished(plans[i].config)
    for i in held:
        try:
            summaries[i] = train(plans[i])
        except Exception as error:
            failures[i] = Failure.of(error)
            counter.failed(plans[i].config, failures[i])
            continue
        counter.finished(plans[i].config)


class RunCounter:
    """Counts a comparison's finished runs: a bar on a terminal, else a line per finished run."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.terminal = draws_bar(enabled)
        self.bar = tqdm(total=total, initial=done, desc="runs", disable=not self.terminal)

    def starting(self, config: RunConfig) -> None:
        self.bar.set_postfix_str(f"{config.method.name} seed {config.seed}")

    def finished(self, config: RunConfig) -> None:
        self.done += 1
        self.bar.update(1)
        if self.enabled and not self.terminal:
            print(f"finished {config.run_dir()} ({self.done}/{self.total} runs)", file=sys.stderr, flush=True)

    def failed(self, config: RunConfig, failure: Failure) -> None:
        """A run that failed: counted as done, and said in one line (the grid goes on)."""
        self.done += 1
        self.bar.update(1)
        line = f"failed {config.run_dir()}: {failure.reason} ({self.done}/{self.total} runs)"
        if self.terminal:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> RunCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
