"""What an executor runs: a grid cut into :class:`Unit` s of work (one run; one method's seeds when
batched) that carry everything a worker needs, the config file's folder included, so a run's
files resolve the same way in any process as in ``labelemb train``. An :class:`Executor` runs the
units and reports each one as it finishes, or fails; :func:`run_unit` is what every worker calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..assembly import RunPlan
from ..config import RunConfig
from .failures import Failure

#: Called in the driver as unit ``i`` finishes, with its runs' summaries.
Finished = Callable[[int, list[dict[str, Any]]], None]
#: Called in the driver as unit ``i`` fails, with how (its runs stay unfinished).
Failed = Callable[[int, Failure], None]
#: What a worker hands back for a unit: its runs' summaries, or its failure.
Outcome = list[dict[str, Any]] | Failure


class ExecutorError(ValueError):
    """The executor cannot run the grid as asked (a device, a cluster, storage); one line says why."""


class Job(Protocol):
    """How a unit's runs train when not as plain runs: a picklable description (plain data) that
    trains them itself in the worker, such as a tuning trial that reports its checks to its study
    (:class:`labelemb.tuning.trial.TrialJob`). The grid knows only this door, not who opens it."""

    def run(self, plans: list[RunPlan]) -> list[dict[str, Any]]:
        """Train the runs of ``plans`` (checked by the grid) in this process; their summaries."""
        ...


@dataclass(frozen=True)
class Unit:
    """One unit of the grid's work: the plan of one run, or of one method's seeds when batched.

    A plan is plain data (names, options, paths; the config file's folder in its config), so a
    worker of any process or node trains the very runs the driver planned and checked."""

    plans: tuple[RunPlan, ...]
    batched: bool = False
    threads: int | None = None  # torch threads in the worker; None: as the process has them
    #: How the runs train when not as plain runs (a tuning trial reporting to its study), or None.
    job: Job | None = None

    @classmethod
    def of(cls, plans: Sequence[RunPlan], *, batched: bool = False, job: Job | None = None) -> Unit:
        return cls(plans=tuple(plans), batched=batched, job=job)

    @property
    def configs(self) -> list[RunConfig]:
        """The configs of the unit's runs (their records)."""
        return [plan.config for plan in self.plans]

    def label(self) -> str:
        """``label_embedding seed 3`` (``seeds 0-4`` when batched)."""
        seeds = [plan.seed for plan in self.plans]
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
        return f"{self.plans[0].config.method.name} {which}"


def run_unit(unit: Unit, read_data: Callable[[Any], Any] | None = None) -> list[dict[str, Any]]:
    """Train a unit's runs in this process (resuming any from its checkpoint); their summaries.

    The driver planned and checked every run before any unit started: the trainer is handed those
    plans (:func:`~labelemb.training.trainer.plan_runs`), not planned or checked again.
    ``read_data`` (a plan's data source -> its data set) gives the runs data read before, a warm
    worker's (:class:`~labelemb.sweep.worker.HeldData`); without it each run reads its own.
    """
    # lazy: the trainer imported where a unit trains, as before issue 71 (hoisted: Ray's grid stalled)
    from ..training import same_numbers_at_any_thread_count, train  # lazy: the same

    same_numbers_at_any_thread_count()  # a Ray worker does not inherit the driver's environment
    if unit.threads is not None:
        torch.set_num_threads(unit.threads)
    plans = list(unit.plans)
    if unit.job is not None:
        return unit.job.run(plans)
    dataset = None if read_data is None else read_data(plans[0].data)
    if unit.batched:
        return train(plans, progress=False, dataset=dataset)
    return [train(plan, dataset=dataset) for plan in plans]


class Executor(Protocol):
    """Runs a grid's units."""

    def run(self, units: list[Unit], finished: Finished, failed: Failed | None = None) -> None:
        """Run every unit, calling ``finished(i, summaries)`` in the driver as unit ``i`` finishes,
        and ``failed(i, failure)`` as one fails, while the others go on (without ``failed``, the
        first failure raises its run's error). A unit that ran out of memory beside others is tried
        once more alone first."""
        ...

    def session(self) -> contextlib.AbstractContextManager[None]:
        """While open, grid after grid runs on the same workers (a command of many rounds, ``tune``,
        starts its processes or connects to its cluster once)."""
        ...


def deliver(i: int, outcome: Outcome, finished: Finished, failed: Failed | None) -> None:
    """Hand unit ``i``'s outcome to ``finished`` or ``failed`` (raise its error without ``failed``)."""
    if not isinstance(outcome, Failure):
        finished(i, outcome)
    elif failed is not None:
        failed(i, outcome)
    else:
        outcome.raise_()
