"""A run as a command plans it: made once, where the run is planned, and handed down from there.

A :class:`RunPlan` holds what every part of training asks of one (method, seed) run before it is
built: its config and its run folder; its device and task are filled in once the trainer knows
them. :func:`plan_run` is the one place a run's own folder is made from its config.

A run is checked at one boundary, :func:`~labelemb.train.trainer.plan_runs`: the trainer's entry
points take a config there, and a plan as one that passed it (the grid plans every run before any
trains and hands its plans on, to its workers too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import RunConfig
from ..rundir import RunDir
from ..tasks import Task


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
