"""A run as a command plans it: made once, where the run is planned, and handed down from there.

A :class:`RunPlan` holds what every part of training asks of one (method, seed) run before it is
built: its config, checked once per command (:func:`~labelemb.train.trainer.preflight`), and its
run folder; its device and task are filled in once the trainer knows them. :func:`plan_run` is
the one place a run's own folder is made from its config.

A command that checks its configs ahead of training them through the public entry points (the
grid: :func:`~labelemb.sweep.grid.run_grid`) says so with :func:`checked_runs`, so that the
trainer takes those plans as checked instead of checking the same configs again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch

from ..rundir import RunDir
from ..tasks import Task
from .config import RunConfig


@dataclass(frozen=True)
class RunPlan:
    """One (method, seed) run as a command plans it: its config, its folder and, once known, the
    device it trains on and its task."""

    config: RunConfig
    folder: RunDir
    device: torch.device | None = None
    task: Task | None = None


def plan_run(config: RunConfig, device: torch.device | None = None, task: Task | None = None) -> RunPlan:
    """The plan of a run of ``config``, with its folder (:meth:`RunConfig.run_dir`)."""
    return RunPlan(config, RunDir(config.run_dir()), device, task)


#: The plans this command has checked already (:func:`checked_runs`).
_CHECKED: ContextVar[tuple[RunPlan, ...]] = ContextVar("checked_runs", default=())


@contextlib.contextmanager
def checked_runs(plans: Iterable[RunPlan]) -> Iterator[None]:
    """While open, the trainer takes ``plans`` as checked: a run of one of their configs (the
    very config object) is not checked again."""
    token = _CHECKED.set((*_CHECKED.get(), *plans))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def checked_plan(config: RunConfig) -> RunPlan | None:
    """The checked plan of ``config`` (this very object) that :func:`checked_runs` holds, if any."""
    return next((plan for plan in _CHECKED.get() if plan.config is config), None)
