"""The training loop: one loop for one seed, for many seeds side by side, and for torchrun.

What differs between those is how parameters and batches are laid out (a *layout*:
:class:`~labelemb.training.single.Single` or :class:`~labelemb.training.stacked.Stacked`); what differs
between kinds of data is the *task* (:mod:`labelemb.tasks`). The loop itself walks the
epochs and batches, counts steps and, at each check, has every run evaluated
(:mod:`labelemb.training.results`) and its files saved (:class:`~labelemb.training.saving.Saver`);
the runs it trains are built, restored and laid out beforehand (:mod:`labelemb.training.recipe`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor

from ..callbacks import Callback
from ..tasks import Predictor, Task
from . import distributed
from .dev_predictions import reads_dev
from .epoch_order import rows_per_example
from .results import check_record, last_is_selected
from .saving import Saver
from .seed_run import Progress, SeedRun, Timetable

logger = logging.getLogger(__name__)


class Layout(Protocol):
    """How the parameters and batches of the runs being trained together are laid out."""

    runs: list[SeedRun]

    def optimise(self) -> None:
        """Make the runs' Adam and schedule over the layout's parameters, resumed where their
        checkpoints left them (before the first step)."""
        ...

    def epoch_orders(self, epoch: int, split: Any, batch_size: int) -> Tensor:
        """Each run's order of the training set this epoch, ``(S, len(split) * rows_per_example)``
        (:func:`labelemb.training.epoch_order.epoch_order` for each run's seed and method)."""
        ...

    def step(self, split: Any, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One optimisation step of every run on its rows of ``index`` ``(S, B)``; returns each
        run's loss and logged terms, detached (scalars for one run, ``(S,)`` for several)."""
        ...

    #: The runs' learning-rate schedule (one over the layout's parameters), stepped at each epoch's end.
    scheduler: Any

    def hand_dev_predictions(self, dev: Any) -> None:
        """The runs' methods get the dev split's logits and labels (a method that reads them)."""
        ...

    def update_epoch_state(self) -> None:
        """The methods' epoch-level state swapped, each run's own (an EpochState method)."""
        ...

    def sync(self) -> None:
        """Bring each run's own modules up to date (for evaluation and saving)."""
        ...

    def predictor(self, s: int) -> Predictor: ...

    def checkpoint_state(self, s: int) -> dict[str, Any]:
        """Run ``s``'s network, optimiser, schedule and random state, in the one checkpoint format."""
        ...


def advance(progress: Progress, examples: int, timetable: Timetable) -> tuple[bool, bool]:
    """Count one finished step of ``examples`` examples; return (epoch ended, evaluation due).

    Evaluation is due every ``timetable.eval_every`` examples (at each epoch's end when None) and at the end.
    """
    before = progress.examples
    progress.step += 1
    progress.examples += examples
    progress.batch += 1
    epoch_ended = progress.batch == timetable.batches_per_epoch
    if epoch_ended:
        progress.epoch += 1
        progress.batch = 0
    every = timetable.eval_every
    due = (progress.examples // every > before // every) if every else epoch_ended
    return epoch_ended, due or progress.step == timetable.total_steps


class TermSums:
    """Each run's loss and logged terms, summed over the steps since the last check.

    Kept as one stacked tensor, ``(terms,)`` for one run or ``(terms, S)`` for runs trained
    together, so a step costs one addition however many terms a method logs.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.total: Tensor | None = None
        self.steps = 0

    def add(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        values = torch.stack([loss.detach(), *terms.values()]).float()
        if self.total is None:
            self.names, self.total = ["loss", *terms], values
        else:
            self.total = self.total + values
        self.steps += 1

    def means(self) -> dict[str, list[float]]:
        """``train_<name>`` -> mean per step, one per run (under torchrun, of the global batch)."""
        if self.total is None:
            return {}
        steps = max(self.steps, 1)
        if distributed.current().world_size > 1:
            # Each process's loss is its share of the global batch's (methods normalise by the
            # global counts), so the global loss is the mean over processes.
            torch.distributed.all_reduce(self.total, op=torch.distributed.ReduceOp.SUM)
            self.total /= distributed.current().world_size
        per_run = self.total.reshape(len(self.names), -1).tolist()
        return {f"train_{name}": [v / steps for v in total] for name, total in zip(self.names, per_run)}


@dataclass
class Clock:
    """Time since a loop started, and since its last evaluation: training time excludes evaluation
    and checkpointing, and is read only at evaluations so that no step waits for the device."""

    started: float = field(default_factory=time.perf_counter)
    segment_start: float = field(default_factory=time.perf_counter)


def check(
    layout: Layout,
    task: Task,
    timetable: Timetable,
    shared: Progress,
    term_sums: TermSums,
    clock: Clock,
    wall_at_start: list[float],
    callbacks: Callback,
    saver: Saver,
) -> None:
    """A check of every run of the layout: its position and time brought up to date, its record
    made (:func:`~labelemb.training.results.check_record`) and appended, the callbacks told
    (``on_record``: what they change in its progress is saved) and its files saved (``saver``),
    its weights as the selected ones where the check is the one the run reports so far."""
    now = time.perf_counter()
    layout.sync()
    means = term_sums.means()
    count = len(layout.runs)
    predictions = getattr(layout, "predictions", None)
    memorisation = predictions.figures() if predictions is not None else [{}] * count
    for s, run in enumerate(layout.runs):
        progress = run.progress
        for key in ("epoch", "batch", "step", "examples"):
            setattr(progress, key, getattr(shared, key))
        # Time shared by runs trained together counts 1/S to each: the cost of one model.
        progress.train_seconds += (now - clock.segment_start) / count
        progress.wall_seconds = wall_at_start[s] + (now - clock.started) / count
        terms = {name: per_run[s] for name, per_run in means.items()}
        record, files = check_record(
            run, layout.predictor(s), task, timetable.dev, timetable.test, timetable.num_train, terms
        )
        record.update(memorisation[s])
        progress.records.append(record)
        callbacks.on_record(run)
        selected = last_is_selected(progress.records, task, run.plan.selection)
        saver.check(run, files, partial(_checkpoint_state, layout, s), selected)


def _checkpoint_state(layout: Layout, s: int) -> dict[str, Any]:
    """Run ``s``'s checkpoint: the layout's state of it, and its row of the training predictions."""
    state = layout.checkpoint_state(s)
    predictions = getattr(layout, "predictions", None)
    return state if predictions is None else {**state, **predictions.state(s)}


def end_epoch(layout: Layout, dev: Any) -> None:
    """An epoch's end, before the callbacks hear of it: a method that reads the dev split gets its
    predictions (:mod:`labelemb.training.dev_predictions`), the methods' epoch-level state is
    swapped (ols, lwr, pskd, maxsup: :class:`~labelemb.methods.abilities.EpochState`), and the
    learning rate takes its step."""
    if reads_dev(layout.runs[0].method):
        layout.hand_dev_predictions(dev)
    layout.update_epoch_state()
    layout.scheduler.step()


def run_loop(
    layout: Layout,
    task: Task,
    timetable: Timetable,
    *,
    device: torch.device,
    callbacks: Callback,
    saver: Saver,
) -> None:
    """Train the layout's runs, which stand at the same step, to the end of their schedule, or
    until a callback stops every one of them (``progress.stopped``); ``callbacks`` hear of every
    step, epoch end, record and check (:class:`labelemb.callbacks.Callback`); ``saver`` writes
    each check's files."""
    runs = layout.runs
    count = len(runs)
    # Epoch, batch, step and examples are the same for every run trained together.
    shared = Progress(**{k: getattr(runs[0].progress, k) for k in ("epoch", "batch", "step", "examples")})
    wall_at_start = [run.progress.wall_seconds for run in runs]
    term_sums = TermSums()
    clock = Clock()
    # A method that shapes its batches (cskd's pairs) has rows_per_example rows per example drawn.
    group = rows_per_example(runs[0].method)
    width = timetable.batch_size * group

    def stopped() -> bool:
        return all(run.progress.stopped is not None for run in runs)

    try:
        while shared.epoch < timetable.epochs and shared.step < timetable.total_steps and not stopped():
            orders = layout.epoch_orders(shared.epoch, timetable.train, timetable.batch_size).to(device)
            for batch in range(shared.batch, timetable.batches_per_epoch):
                if shared.step >= timetable.total_steps or stopped():
                    break
                index = orders[:, batch * width : (batch + 1) * width]
                losses, terms = layout.step(timetable.train, index)
                term_sums.add(losses, terms)
                epoch_ended, due = advance(shared, index.shape[1] // group, timetable)
                if epoch_ended:
                    end_epoch(layout, timetable.dev)
                    callbacks.on_epoch_end(runs)
                callbacks.on_step(runs)
                if not due:
                    continue
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                check(layout, task, timetable, shared, term_sums, clock, wall_at_start, callbacks, saver)
                term_sums = TermSums()
                callbacks.on_check(runs)
                clock.segment_start = time.perf_counter()
    finally:
        callbacks.on_loop_end(runs)
    end = time.perf_counter()
    layout.sync()
    for s, run in enumerate(runs):
        run.progress.wall_seconds = wall_at_start[s] + (end - clock.started) / count
