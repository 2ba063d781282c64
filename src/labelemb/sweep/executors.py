"""Where the grid's runs train: this machine's processes (``local``) or a Ray cluster (``ray``).

A grid is cut into :class:`Unit` s of work (one run; one method's seeds when batched) that carry
everything a worker needs, the config file's folder included, so a run's files resolve the same
way in any process as in ``labelemb train``. An :class:`Executor` runs the units and reports each
one as it finishes; :func:`run_unit` is what every worker calls.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Protocol

import torch

from ..config import RunConfig
from ..train.plan import RunPlan

#: Called in the driver as unit ``i`` finishes, with its runs' summaries.
Finished = Callable[[int, list[dict[str, Any]]], None]


class ExecutorError(ValueError):
    """The executor cannot run the grid as asked (a device, a cluster, storage); one line says why."""


class Job(Protocol):
    """How a unit's runs train when not as plain runs: a picklable description (plain data) that
    trains them itself in the worker, such as a tuning trial that reports its checks to its study
    (:class:`labelemb.tune.trial.TrialJob`). The grid knows only this door, not who opens it."""

    def run(self, plans: list[RunPlan]) -> list[dict[str, Any]]:
        """Train the runs of ``plans`` (checked by the grid) in this process; their summaries."""
        ...


@dataclass(frozen=True)
class Unit:
    """One unit of the grid's work: the configs of one run, or of one method's seeds when batched."""

    configs: tuple[dict[str, Any], ...]  # RunConfig.model_dump(mode="json") of each run
    source_folder: str | None  # the config file's folder: relative data paths resolve there
    batched: bool
    threads: int | None = None  # torch threads in the worker; None: as the process has them
    #: How the runs train when not as plain runs (a tuning trial reporting to its study), or None.
    job: Job | None = None

    @classmethod
    def of(cls, configs: Sequence[RunConfig], *, batched: bool = False, job: Job | None = None) -> Unit:
        return cls(
            configs=tuple(config.model_dump(mode="json") for config in configs),
            source_folder=configs[0].source_folder,
            batched=batched,
            job=job,
        )

    def label(self) -> str:
        """``label_embedding seed 3`` (``seeds 0-4`` when batched)."""
        seeds = [config["seed"] for config in self.configs]
        which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
        return f"{self.configs[0]['method']['name']} {which}"

    def run_configs(self) -> list[RunConfig]:
        """The configs as the driver had them, with the folder of their config file."""
        return [
            RunConfig.model_validate({**values, "source_folder": self.source_folder})
            for values in self.configs
        ]


def run_unit(unit: Unit) -> list[dict[str, Any]]:
    """Train a unit's runs in this process (resuming any from its checkpoint); their summaries.

    The grid checked every config before any unit started: the trainer is handed their plans,
    runs that passed its check (:func:`~labelemb.train.trainer.plan_runs`), not checked again.
    """
    from ..train.plan import plan_run
    from ..train.threads import same_numbers_at_any_thread_count
    from ..train.trainer import train, train_seeds

    same_numbers_at_any_thread_count()  # a Ray worker does not inherit the driver's environment
    if unit.threads is not None:
        torch.set_num_threads(unit.threads)
    plans = [plan_run(config) for config in unit.run_configs()]
    if unit.job is not None:
        return unit.job.run(plans)
    if unit.batched:
        return train_seeds(plans, batched=True, progress=False)
    return [train(plan) for plan in plans]


class Executor(Protocol):
    """Runs a grid's units."""

    def run(self, units: list[Unit], finished: Finished) -> None:
        """Run every unit, calling ``finished(i, summaries)`` in the driver as unit ``i`` finishes."""
        ...

    def session(self) -> contextlib.AbstractContextManager[None]:
        """While open, grid after grid runs on the same workers (a command of many rounds, ``tune``,
        starts its processes or connects to its cluster once)."""
        ...


def visible_devices(asked: Sequence[str] | None) -> list[str]:
    """The devices runs are spread over: ``asked`` (each checked to exist here), else every visible
    CUDA device, else the CPU."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not asked:
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    devices = []
    for name in asked:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ExecutorError(f"--devices: {name!r} is not a device; use cpu or cuda:N") from None
        if device.type == "cuda" and (device.index is None or device.index >= count):
            raise ExecutorError(
                f"--devices: {name!r} is not one of this machine's {count} CUDA device(s); "
                f"use {', '.join(f'cuda:{i}' for i in range(count)) or 'cpu'}"
            )
        devices.append(str(device))
    return devices


@dataclass
class LocalExecutor:
    """This machine's processes: ``jobs`` workers on the CPU, sharing its threads; with CUDA devices,
    ``runs_per_device`` workers per device, each unit on one device (spawned processes, so that no
    worker inherits another's CUDA or thread state)."""

    jobs: int = 1
    devices: Sequence[str] | None = None
    runs_per_device: int = 1
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def slots(self) -> list[str | None]:
        """One entry per worker: the device it trains on (None: the config's own, on the CPU)."""
        devices = visible_devices(self.devices)
        if devices == ["cpu"]:
            return [None] * self.jobs
        return [device for device in devices for _ in range(self.runs_per_device)]

    def run(self, units: list[Unit], finished: Finished) -> None:
        slots = self.slots()
        if len(slots) == 1 and slots[0] is None:
            for i, unit in enumerate(units):  # in this process: one run never pays a spawn
                finished(i, run_unit(unit))
            return
        with self.session():
            assert self._pool is not None
            futures = {self._pool.submit(run_unit, unit): i for i, unit in enumerate(units)}
            for future in as_completed(futures):
                finished(futures[future], future.result())

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The worker processes, started once while open (none when the runs train in this process)."""
        slots = self.slots()
        if self._pool is not None or slots == [None]:
            yield
            return
        # spawn, not fork: forking a process that already ran torch's thread pools can hang.
        context = get_context("spawn")
        devices = context.Queue()
        for slot in slots:
            devices.put(slot)
        threads = max(1, (os.cpu_count() or 1) // len(slots))
        # Each worker takes one device as it starts and keeps it; the pool hands out the units.
        with ProcessPoolExecutor(
            max_workers=len(slots), mp_context=context, initializer=_take_device, initargs=(devices, threads)
        ) as pool:
            self._pool = pool
            try:
                yield
            finally:
                self._pool = None


def _take_device(devices: Any, threads: int) -> None:
    """A local worker's start: its share of the CPU threads and its device, for every unit it trains.

    ``auto`` and ``cuda`` in a config then mean this device; the config itself stays as written.
    """
    torch.set_num_threads(threads)
    device = devices.get()
    if device is not None:
        torch.cuda.set_device(torch.device(device))
