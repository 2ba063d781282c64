"""Where the grid's runs train: this machine's processes (``local``, here) or a Ray cluster (``ray``,
:mod:`.ray_executor`).

The local executor's workers are warm (:mod:`.worker`): a pool of processes that each train unit
after unit, forked from a server process that imported labelemb once (``forkserver``), so a grid
pays one import, not one per worker, and a second grid of the same command none. What a unit
is, and what every worker calls, is in :mod:`.units`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import torch

from .failures import Failure, retry_alone
from .units import Executor, ExecutorError, Failed, Finished, Job, Outcome, Unit, deliver, run_unit
from .worker import start, work

__all__ = [
    "Executor",
    "ExecutorError",
    "Failed",
    "Finished",
    "Job",
    "LocalExecutor",
    "Unit",
    "open_pool",
    "run_unit",
    "visible_devices",
]


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
    ``runs_per_device`` workers per device, each unit on one device. The workers are warm
    (:func:`open_pool`): each trains unit after unit, from the state it started in."""

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

    def run(self, units: list[Unit], finished: Finished, failed: Failed | None = None) -> None:
        slots = self.slots()
        if slots == [None]:
            for i, unit in enumerate(units):  # in this process: one run never pays a process start
                deliver(i, _here(unit), finished, failed)
            return
        with self.session():
            assert self._pool is not None
            pool = self._pool
            futures = {pool.submit(work, unit): i for i, unit in enumerate(units)}
            out_of_memory: dict[int, Failure] = {}
            try:
                for future in as_completed(futures):
                    i, outcome = futures[future], future.result()
                    if isinstance(outcome, Failure) and outcome.out_of_memory and self.shares_devices():
                        out_of_memory[i] = outcome  # tried again alone once the others are done
                    else:
                        deliver(i, outcome, finished, failed)
                retry_alone(
                    out_of_memory,
                    lambda i: units[i].label(),
                    lambda i: deliver(i, pool.submit(work, units[i]).result(), finished, failed),
                )
            except BaseException:
                _stop(pool, futures)  # an error, or Ctrl-C: nothing of the grid goes on
                raise

    def shares_devices(self) -> bool:
        """Whether runs train beside each other on one device: K > 1 on a GPU, jobs > 1 on the CPU."""
        slots = self.slots()
        return len(slots) > len(set(slots)) if slots[0] is not None else len(slots) > 1

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The worker processes, started once while open (none when the runs train in this process)."""
        slots = self.slots()
        if self._pool is not None or slots == [None]:
            yield
            return
        threads = max(1, (os.cpu_count() or 1) // len(slots))
        with open_pool(slots, threads) as pool:
            self._pool = pool
            try:
                yield
            finally:
                self._pool = None


def _here(unit: Unit) -> Outcome:
    """A unit trained in this process; its failure is its outcome, as a worker's is."""
    try:
        return run_unit(unit)
    except Exception as error:
        return Failure.of(error)


@contextlib.contextmanager
def open_pool(slots: Sequence[str | None], threads: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``len(slots)`` warm workers, each on its slot's device with ``threads`` threads.

    Workers are forked from the forkserver, which imports the worker's modules once and stays for
    the life of this process (spawned, where there is no forkserver): not forked from this
    process, whose torch thread pools may already run (forking them can hang).
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        # What every unit imports, once in the server (taken only where it is not running yet).
        context.set_forkserver_preload([__name__, "labelemb.training.trainer"])
    devices = context.Queue()
    for slot in slots:
        devices.put(slot)
    # Each worker takes one device as it starts and keeps it; the pool hands out the units.
    initargs = (devices, threads, dict(os.environ))
    with ProcessPoolExecutor(
        max_workers=len(slots), mp_context=context, initializer=_start_worker, initargs=initargs
    ) as pool:
        yield pool


def _start_worker(devices: Any, threads: int, environment: dict[str, str]) -> None:
    """A local worker's start: the driver's environment as it is now (a forked worker has the
    forkserver's, from when it started), its share of the CPU threads and its device, for every
    unit it trains; then the state each of its runs starts from.

    ``auto`` and ``cuda`` in a config then mean this device; the config itself stays as written.
    """
    os.environ.clear()
    os.environ.update(environment)
    torch.set_num_threads(threads)
    device = devices.get()
    if device is not None:
        torch.cuda.set_device(torch.device(device))
    start()


def _stop(pool: ProcessPoolExecutor, futures: dict[Future[Outcome], int]) -> None:
    """Cancel the units not started and end the workers at once (their runs resume from their
    checkpoints when the command runs again)."""
    for future in futures:
        future.cancel()
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
