"""The trainer's callback seam: what a run tells those who watch it, and who watches every run.

A :class:`Callback` is handed to the trainer (``labelemb.training.train(config, callbacks=[...])``);
the trainer calls its hooks and never asks what it is. ``runs`` are the runs trained together
(one, or the seeds of a config side by side), each with its ``config``, ``folder``, ``plan``
(device, task) and ``progress``. Whatever is optional in a run is a callback: early stopping, the
progress display, the methods' epoch-end updates, the trackers, a tuning trial's pruning.

What must survive a resume lives in the run's ``progress``, which every checkpoint saves: a
callback changes it in :meth:`Callback.on_record`, before the check's checkpoint is written (early
stopping's counter). A callback stops a run by setting ``progress.stopped`` (why, and where); the
loop ends when every run of it is stopped, and raising in a hook stops it at once (unfinished).

The callbacks every run gets without being handed them (the trackers of
``train.log_to``) are registered in :data:`DEFAULTS`, a :class:`~labelemb.registry.Registry` as
for every other kind, at the package's front door (``labelemb/__init__.py``), which knows every room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .registry import Registry


class Callback:
    """A run's hooks, each a no-op here; a callback overrides those it needs."""

    def check(self, configs: Sequence[Any]) -> None:
        """Before any data is read or model built: refuse what cannot run, in one line (raise)."""

    def setup(self, configs: Sequence[Any], dataset: Any, task: Any) -> None:
        """The data is read and the task chosen, before any run folder is started: refuse what they
        cannot serve (raise)."""

    def on_run_start(self, runs: list[Any]) -> None:
        """The runs' folders are started; each run's earlier records (a resumed run) are in its progress."""

    def on_step(self, runs: list[Any]) -> None:
        """An optimiser step is taken (keep this cheap: it runs at every step)."""

    def on_epoch_end(self, runs: list[Any]) -> None:
        """An epoch of the training data is done (before a check that falls at its end)."""

    def on_record(self, run: Any) -> None:
        """``run``'s check is recorded (``run.progress.records[-1]``) and its checkpoint not yet
        written: what this changes in ``run.progress`` is saved with it."""

    def on_check(self, runs: list[Any]) -> None:
        """A check's records and checkpoints are on disk; raising stops the runs (they stay unfinished)."""

    def on_loop_end(self, runs: list[Any]) -> None:
        """The loop is left: finished, stopped, or by an exception."""

    def on_run_end(self, runs: list[Any], summaries: list[dict[str, Any]]) -> None:
        """The runs' results are written (the main process)."""

    def on_close(self, runs: list[Any], failed: bool) -> None:
        """The runs are done with, finished or not (``failed``: an exception left the loop)."""


#: Callbacks every run gets: name -> a builder of a fresh callback for one trainer call.
DEFAULTS: Registry[Callable[[], Callback]] = Registry("callback")


def with_defaults(handed: Iterable[Callback] = ()) -> list[Callback]:
    """A fresh callback of each default (by name), then those ``handed``."""
    return [entry.thing() for entry in DEFAULTS.entries()] + list(handed)


class Callbacks(Callback):
    """Several callbacks as one: each hook calls every callback's, in order."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    def check(self, configs: Sequence[Any]) -> None:
        for callback in self.callbacks:
            callback.check(configs)

    def setup(self, configs: Sequence[Any], dataset: Any, task: Any) -> None:
        for callback in self.callbacks:
            callback.setup(configs, dataset, task)

    def on_run_start(self, runs: list[Any]) -> None:
        for callback in self.callbacks:
            callback.on_run_start(runs)

    def on_step(self, runs: list[Any]) -> None:
        for callback in self.callbacks:
            callback.on_step(runs)

    def on_epoch_end(self, runs: list[Any]) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(runs)

    def on_record(self, run: Any) -> None:
        for callback in self.callbacks:
            callback.on_record(run)

    def on_check(self, runs: list[Any]) -> None:
        for callback in self.callbacks:
            callback.on_check(runs)

    def on_loop_end(self, runs: list[Any]) -> None:
        for callback in self.callbacks:
            callback.on_loop_end(runs)

    def on_run_end(self, runs: list[Any], summaries: list[dict[str, Any]]) -> None:
        for callback in self.callbacks:
            callback.on_run_end(runs, summaries)

    def on_close(self, runs: list[Any], failed: bool) -> None:
        for callback in self.callbacks:
            callback.on_close(runs, failed)
