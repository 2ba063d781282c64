"""The runs a process owns, from data to results: the recipe every layout shares, read top to bottom
in its named steps.

Placement (the device), data (continued runs copied, frozen features made), task, then for each
group that trains together (one run, or seeds side by side): build and restore (:func:`build_seed_run`:
each run seeded, built, resumed from its checkpoint), saving starts its folders
(:class:`~labelemb.training.saving.Saver`), layout and optimiser (:func:`lay_out`), the one loop
(:func:`~labelemb.training.loop.run_loop`: evaluation and saving at each check), finish (summaries and
results). The callbacks handed in (:mod:`labelemb.callbacks`) hear of each group's start, checks and
end.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from ..assembly.frozen import features_through
from ..assembly.network import Network
from ..assembly.parts import Placement, Timing, build_pair, resolve_device, seed_everything
from ..assembly.plan import RunPlan
from ..callbacks import Callback, Callbacks
from ..config import ConfigError
from ..data import Dataset
from ..data.text.sequences import TextDataset
from ..tasks import Task, build_task
from . import distributed, threads
from .continuation import continue_runs
from .determinism import use_deterministic_kernels
from .dev_predictions import DevSplitCheck
from .display import ProgressDisplay
from .early_stopping import EarlyStopping
from .flops import flops_per_example
from .loop import run_loop
from .memorisation import training_predictions
from .results import (
    saved_tensors,
    summarize,
    warn_if_at_chance,
    warn_if_degenerate_tag_sets,
    warn_if_diverged,
    warn_if_temperature_at_bound,
)
from .saving import Saver
from .seed_run import Progress, SeedRun, Timetable, load_state, with_this_code
from .single import Single
from .stacked import Stacked

logger = logging.getLogger(__name__)


def train_owned(
    plans: list[RunPlan],
    dataset: Dataset | TextDataset | None,
    stacked: bool,
    show_progress: bool,
    hooks: Callback,
) -> list[dict[str, Any]]:
    """The recipe of the runs this process owns, none finished: placement -> data -> task ->
    build and restore -> layout and optimiser -> loop -> finish. ``hooks`` hear of each group
    after the trainer's own callbacks (the methods' epoch-end updates, early stopping) and before
    the progress display."""
    processes = distributed.current()
    first = plans[0]
    # Placement: the device this process trains on (its own GPU under torchrun), its threads.
    device = _process_device(first.placement, processes)
    hooks = Callbacks([EarlyStopping(), DevSplitCheck(), hooks])
    # Data: read once for every run; a continued run's folder copied from its source first.
    dataset = first.data.load() if dataset is None else first.data.with_noise(dataset)
    continue_runs(plans, dataset, processes)
    # Task: the data decides it, in one place (the task's for_run reads the run's record); the
    # callbacks may refuse the pair.
    task = build_task(first.config, dataset)
    plans = [replace(plan, device=device, task=task) for plan in plans]
    hooks.setup([plan.config for plan in plans], dataset, task)
    if not first.placement.threads:
        threads.use_free_cores_if_asked()
    run_files = task.run_files(dataset)  # of the data as read (its vocabulary), frozen or not
    if first.features is not None:
        dataset = features_through(first.features, dataset, task, device)
    timetable = schedule(first.timing, dataset, device, first.experiment)
    # Saving: every file the runs' folders get, through one door (the main process's).
    saver = Saver(writes=processes.is_main)
    # Build and restore: each run seeded, built and resumed, in the groups that train together,
    # each group trained in a call of its own (:func:`_train_group`): nothing here holds a finished
    # group's runs, even where this frame outlives its call (kept by a reference cycle through a
    # frame below it, as a lazy import's caught exception makes), so the next group, or a
    # comparison's next method, never trains beside them.
    train_group = partial(
        _train_group,
        dataset=dataset,
        timetable=timetable,
        saver=saver,
        run_files=run_files,
        hooks=hooks,
        show_progress=show_progress and processes.is_main,
    )
    summaries: dict[int, dict[str, Any]] = {}
    for trained in map(train_group, _groups(plans, dataset, stacked)):
        summaries.update(trained)
    return [summaries[j] for j in range(len(plans))]


def _train_group(
    members: list[tuple[int, SeedRun]],
    *,
    dataset: Dataset | TextDataset,
    timetable: Timetable,
    saver: Saver,
    run_files: dict[str, str],
    hooks: Callback,
    show_progress: bool,
) -> dict[int, dict[str, Any]]:
    """One group of runs (with their places in the plans) that trains together: layout and
    optimiser -> loop -> finish; their summaries by place."""
    group = [run for _, run in members]
    first = group[0].plan
    task, device = first.task, first.device
    assert task is not None and device is not None  # the recipe placed the plans
    saver.start(group, run_files, first.data.request, dataset)
    # Layout and optimiser: one run, or seeds side by side; Adam and its schedule (the loop
    # steps it, and the methods' epoch-level state, at each epoch's end).
    layout = lay_out(group, task, device)
    layout.predictions = training_predictions(group, dataset, device)
    _count_flops(group, task, timetable)
    is_main = distributed.current().is_main
    callbacks = Callbacks([hooks, ProgressDisplay(group, task, timetable, show_progress)])
    callbacks.on_run_start(group)
    failed = True
    try:
        # Loop: the one loop, whatever the layout; each check evaluated and saved.
        try:
            run_loop(layout, task, timetable, device=device, callbacks=callbacks, saver=saver)
        except RuntimeError as error:  # train.deterministic and an op without such a kernel: one line
            refusal = name_nondeterministic(error, first.method.name)
            if refusal is not None:
                raise ConfigError(refusal) from None
            raise
        # Finish: each run's summary and results saved; the callbacks hear of them.
        trained = [_finish_run(run, s, layout, dataset, saver, timetable) for s, run in enumerate(group)]
        if is_main:
            callbacks.on_run_end(group, trained)
        failed = False
    finally:
        callbacks.on_close(group, failed)
    return {j: summary for (j, _), summary in zip(members, trained)}


def build_seed_run(plan: RunPlan, dataset: Dataset | TextDataset) -> SeedRun:
    """Build and restore: a planned run seeded and built on its device, with its task's rows, then
    resumed from its folder's checkpoint if it has one (:func:`restore`); its progress records
    the code that trains it on."""
    if plan.device is None or plan.task is None:
        raise ValueError(f"the plan of {plan.folder.path} has no device or task yet")
    seed_everything(plan.seed)
    model, method = build_pair(plan.backbone, plan.method, dataset)
    network = Network(model, method, rows=plan.task.rows).to(plan.device)
    run = SeedRun(plan, model, method, network, Progress(), None, torch.get_rng_state())
    restore(run)
    run.progress.code = with_this_code(run.progress.code, run.progress.step)
    return run


def restore(run: SeedRun) -> None:
    """A run's weights, progress and random state as its folder's checkpoint holds them (nothing
    without one); its layout resumes the optimiser from the same checkpoint (:func:`lay_out`)."""
    checkpoint = run.folder.read_checkpoint()
    if checkpoint is None:
        return
    load_state(run.folder, "network", run.network, checkpoint)
    run.checkpoint = checkpoint
    run.progress = Progress(**checkpoint["progress"])
    run.rng_state = checkpoint["torch_rng"]
    logger.info(
        "%s: resuming from its checkpoint at step %d (epoch %d, batch %d)",
        run.folder.path,
        run.progress.step,
        run.progress.epoch,
        run.progress.batch,
    )


def lay_out(runs: list[SeedRun], task: Task, device: torch.device) -> Single | Stacked:
    """Layout and optimiser: one run on its own, or seeds side by side (their tensors stacked),
    then Adam and its schedule over the layout's parameters as the runs' plans say, resumed where
    their checkpoints left them."""
    layout = Single(runs[0], task, device) if len(runs) == 1 else Stacked(runs, task, device)
    layout.optimise()
    return layout


def _process_device(placement: Placement, processes: distributed.Processes) -> torch.device:
    """The device this process trains on (its own GPU under torchrun), its threads set first."""
    if placement.threads:
        torch.set_num_threads(placement.threads)
    use_deterministic_kernels(placement.deterministic)
    device = resolve_device(placement.device)
    if device.type == "cuda" and processes.world_size > 1:
        device = torch.device("cuda", processes.local_rank)
    return device


def _groups(
    plans: list[RunPlan], dataset: Dataset | TextDataset, stacked: bool
) -> Iterable[list[tuple[int, SeedRun]]]:
    """The runs (with their place in ``plans``) in the groups that train together."""
    if stacked:
        # A crash between two seeds' checkpoint writes leaves them a check apart: each step's
        # seeds train together.
        by_step: dict[int, list[tuple[int, SeedRun]]] = {}
        for j, plan in enumerate(plans):
            run = build_seed_run(plan, dataset)
            by_step.setdefault(run.progress.step, []).append((j, run))
        return by_step.values()
    # One at a time: a long list of runs never holds more than one model in memory.
    return ([(j, build_seed_run(plan, dataset))] for j, plan in enumerate(plans))


def _count_flops(group: list[SeedRun], task: Task, timetable: Timetable) -> None:
    """One count serves every seed of a group: the seeds share the architecture and the data."""
    first = group[0]
    counted = flops_per_example(
        first.network,
        task,
        timetable.train,
        first.plan.seed,
        timetable.batch_size,
        first.plan.steps.options(0),
    )
    for run in group:
        run.flops_per_example = counted


def _finish_run(
    run: SeedRun,
    s: int,
    layout: Single | Stacked,
    dataset: Dataset | TextDataset,
    saver: Saver,
    timetable: Timetable,
) -> dict[str, Any]:
    """Seed ``s`` of the group: its summary, and (by the main process) its results saved."""
    processes = distributed.current()
    task, device = run.plan.task, run.plan.device
    size = sum(p.numel() for p in run.network.parameters())
    summary = summarize(run.plan, run.progress, dataset, task, device, size)
    summary["processes"] = processes.world_size
    if isinstance(layout, Stacked):
        summary["batched_seeds"] = len(layout.runs)
    if processes.is_main:
        warn_if_at_chance(run, task, timetable)
        warn_if_diverged(run)
        warn_if_temperature_at_bound(run, summary, timetable)
        warn_if_degenerate_tag_sets(run, summary)
        tensors = saved_tensors(run, summary, layout.predictor(s), task, timetable)
        saver.results(run, tensors, summary)
    return summary


#: Fewer updates than this an epoch, and a run learns little in its epochs: said, with the key to change.
FEW_UPDATES_PER_EPOCH = 5


def schedule(
    timing: Timing, dataset: Dataset | TextDataset, device: torch.device, experiment: str = "EXPERIMENT"
) -> Timetable:
    """Move the dataset's splits to ``device`` and take batch size, checks and epochs from ``timing``;
    too few updates an epoch are warned of, with the command line words that mend it."""
    examples, batch_size = len(dataset.train), timing.batch_size
    updates = math.ceil(examples / batch_size)
    if updates < FEW_UPDATES_PER_EPOCH:
        smaller = max(1, examples // (2 * FEW_UPDATES_PER_EPOCH))
        # Under a new experiment name: the run folder of this one keeps its config, and refuses a
        # rerun of another batch size (issue 79: the suggestion, followed as written, was refused).
        logger.warning(
            "%d training examples in batches of %d make %d update(s) an epoch: too few to learn in "
            "%d epoch(s); lower train.batch_size or raise train.epochs, under a new experiment name "
            "(this run's folder keeps its config): e.g. train.batch_size=%d experiment=%s-bs%d",
            examples,
            batch_size,
            updates,
            timing.epochs,
            smaller,
            re.sub(r"-bs\d+$", "", experiment),  # a name this warning gave once gets no second suffix
            smaller,
        )
    return Timetable(
        train=dataset.train.to(device),
        dev=None if dataset.dev is None else dataset.dev.to(device),
        test=dataset.test.to(device),
        batch_size=timing.batch_size,
        eval_every=timing.eval_every,
        epochs=timing.epochs,
        max_steps=timing.max_steps,
    )


_NO_DETERMINISTIC_KERNEL = re.compile(r"^(\S+) does not have a deterministic implementation")


def name_nondeterministic(error: RuntimeError, method: str) -> str | None:
    """One line for torch's refusal of an operation without a deterministic kernel, naming the
    method, the operation and the switch; None for any other error."""
    found = _NO_DETERMINISTIC_KERNEL.search(str(error))
    if found is None:
        return None
    return (
        f"{method} uses {found.group(1)}, which has no deterministic kernel on this device: set "
        "train.deterministic=false to train it (its numbers may then differ from run to run)"
    )
