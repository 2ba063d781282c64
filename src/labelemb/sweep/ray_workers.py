"""The Ray executor's warm workers: Ray actors (:class:`LabelembWorker`), each holding one CPU (and
1/K of a GPU where the runs train on one) for the whole grid and training unit after unit through
:func:`labelemb.sweep.worker.work`, handed out by Ray's :class:`~ray.util.actor_pool.ActorPool`.

An actor whose process dies mid-run is restarted by Ray and its unit run again there
(``max_restarts``, ``max_task_retries``): the run resumes from its checkpoint. A run's own error
is its unit's :class:`~labelemb.sweep.failures.Failure`, never retried: it would fail again.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ..config import RunConfig
from .failures import Failure, one_line
from .units import ExecutorError, Outcome, Unit
from .worker import start, work


class LabelembWorker:
    """A warm worker as a Ray actor: one process that trains the units it is given, each from the
    state it started in (its title, ``ray::LabelembWorker.train``, names it in ``ps``)."""

    def __init__(self) -> None:
        import torch  # lazy: as before issue 71 (hoisted: the cluster tests' grid stalled)

        torch.set_num_threads(1)  # its one CPU (Ray sets OMP_NUM_THREADS to it as well)
        start()

    def train(self, i: int, unit: Unit, cwd: str) -> tuple[int, Outcome]:
        """Unit ``i``'s outcome, trained in the driver's working directory ``cwd``."""
        try:
            _enter(unit, cwd)
        except ExecutorError as error:
            return i, Failure.of(error)
        return i, work(replace(unit, threads=1))


def _enter(unit: Unit, cwd: str) -> None:
    """Change into the driver's working directory ``cwd`` (relative paths in a config then resolve
    as on the driver; the configs stay as written, as their runs record them).

    The driver made each output folder before the grid started, so a node that does not see it
    (one that joined the cluster after the storage check) refuses, rather than writing the runs
    on a disk of its own."""
    for folder in sorted({output_dir(config, cwd) for config in unit.configs}):
        if not os.path.isdir(folder):
            raise ExecutorError(
                f"node {socket.gethostname()} does not see the output folder {folder}, which the driver "
                "made; run folders must be on a file system every node of the cluster mounts at the same path"
            )
    if os.path.isdir(cwd):
        os.chdir(cwd)


def train_unit(unit: Unit, cwd: str) -> list[dict[str, Any]]:
    """A unit's runs trained in this process as a Ray worker trains them (its folder check, the
    driver's working directory), raising what fails."""
    from .units import run_unit  # lazy: as before issue 71 (see LabelembWorker)

    _enter(unit, cwd)
    return run_unit(unit)


def output_dir(config: RunConfig, cwd: str) -> str:
    """A config's output folder as the driver, in ``cwd``, names it: the same on every node that
    shares its file system."""
    return os.path.normpath(os.path.join(cwd, config.output_dir))


def start_workers(ray: Any, count: int, gpus: float, retries: int) -> list[Any]:
    """``count`` new workers, each asking for one CPU and ``gpus`` of a GPU."""
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=retries, max_task_retries=retries)
    return [remote(LabelembWorker).remote() for _ in range(count)]


def end_workers(ray: Any, workers: list[Any]) -> None:
    """End ``workers`` at once, what they train included (their runs resume from their checkpoints
    next time)."""
    for actor in workers:
        with contextlib.suppress(Exception):
            ray.kill(actor)


def train_on(ray: Any, workers: list[Any], units: list[Unit], cwd: str) -> Iterator[tuple[int, Outcome]]:
    """Each unit's outcome as it comes, from ``workers`` through Ray's actor pool; a unit whose
    worker died every try is a failure that says so."""
    from ray.util.actor_pool import ActorPool  # lazy: the ray extra

    pool = ActorPool(workers)
    for i, unit in enumerate(units):
        pool.submit(lambda actor, item: actor.train.remote(*item), (i, unit, cwd))
    waiting, lost = set(range(len(units))), None
    while pool.has_next():
        try:
            i, outcome = pool.get_next_unordered()
        except ray.exceptions.RayError as error:  # its worker died every try (the pool drops it)
            lost = error
            continue
        waiting.discard(i)
        yield i, outcome
    for i in sorted(waiting):
        reason = f"its Ray worker died on every try: {one_line(lost)}" if lost else "its Ray worker died"
        yield i, Failure(reason, worker_died=True)
