"""What a person watching a run sees: a progress bar on a terminal, a line per evaluation elsewhere."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

from ..callbacks import Callback
from ..progress import draws_bar
from ..tasks import Task
from .seed_run import SeedRun, Timetable


class ProgressDisplay(Callback):
    """A progress bar on a terminal; elsewhere (a log file, CI) one line per evaluation instead: a
    callback of the runs trained together, showing the mean of their ``metrics`` at each check."""

    def __init__(self, runs: list[SeedRun], task: Task, timetable: Timetable, enabled: bool) -> None:
        """The display of ``runs``: named by their method and seeds, counting the steps of
        ``timetable`` from where the runs stand, showing the task's metrics."""
        seeds = describe_seeds([run.plan.seed for run in runs])
        self.description = f"{runs[0].plan.method.name} {seeds}" + (" (batched)" if len(runs) > 1 else "")
        self.enabled, self.metrics = enabled, tuple(task.metrics)
        self.total_steps, self.num_train = timetable.total_steps, timetable.num_train
        self.epochs = timetable.epochs
        self.terminal = draws_bar(enabled)
        self.bar = tqdm(
            total=self.total_steps,
            initial=runs[0].progress.step,
            desc=self.description,
            disable=not self.terminal,
            dynamic_ncols=True,
            leave=False,
        )

    def on_step(self, runs: list[Any]) -> None:
        self.bar.update(1)

    def on_check(self, runs: list[Any]) -> None:
        latest = [run.progress.records[-1] for run in runs]
        # A metric of a split the data lacks (no dev split) is not in the records.
        shown = {m: sum(r[m] for r in latest) / len(runs) for m in self.metrics if m in latest[0]}
        self.evaluated(runs[0].progress.step, runs[0].progress.examples, shown)

    def on_loop_end(self, runs: list[Any]) -> None:
        self.bar.close()

    def on_close(self, runs: list[Any], failed: bool) -> None:
        self.bar.close()

    def evaluated(self, step: int, examples: int, metrics: dict[str, float]) -> None:
        if self.terminal:
            self.bar.set_postfix({name: f"{value:.2f}" for name, value in metrics.items()})
        elif self.enabled:
            shown = ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())
            print(
                f"{self.description}: step {step}/{self.total_steps}, "
                f"epoch {examples / self.num_train:.2f}/{self.epochs}: {shown}",
                file=sys.stderr,
                flush=True,
            )


def describe_seeds(seeds: list[int]) -> str:
    """``seed 3``, ``seeds 0-4``, ``seeds 0, 2, 5``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"
