"""One group of runs this process owns, from data to results: the recipe every layout shares.

The runs' device, task and data (continued runs copied, frozen features made), the groups that
train together (one run, or seeds side by side), and for each group: its folders started, its
layout (:class:`~labelemb.train.single.Single` or :class:`~labelemb.train.stacked.Stacked`), the
one loop, the summaries and the results written. The callbacks handed in
(:mod:`labelemb.callbacks`) hear of each group's start, checks and end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch

from ..callbacks import Callback, Callbacks
from ..data import Dataset
from ..data.text.sequences import TextDataset
from ..tasks import build_task
from . import distributed, threads
from .build import load_run_data, resolve_device, step_options
from .continuation import continue_run
from .display import ProgressDisplay
from .early_stopping import EarlyStopping
from .flops import flops_per_example
from .frozen import freeze_features
from .loop import Schedule, SeedRun, run_loop, schedule
from .plan import RunPlan
from .results import finish, summarize, warn_if_at_chance
from .seed import describe_seeds
from .single import Single
from .stacked import Stacked


def train_owned(
    plans: list[RunPlan],
    dataset: Dataset | TextDataset | None,
    stacked: bool,
    show_progress: bool,
    hooks: Callback,
) -> list[dict[str, Any]]:
    """Train runs this process owns, none finished; ``hooks`` after the trainer's own callbacks
    (early stopping) and before the progress display."""
    hooks = Callbacks([EarlyStopping(), hooks])
    plans, dataset, run_files = _prepare(plans, dataset, hooks)
    timetable = schedule(plans[0].config, dataset, plans[0].device)
    summaries: dict[int, dict[str, Any]] = {}
    for members in _groups(plans, dataset, stacked):
        group = [run for _, run in members]
        trained = _train_group(group, dataset, timetable, run_files, show_progress, hooks)
        summaries.update((j, summary) for (j, _), summary in zip(members, trained))
    return [summaries[j] for j in range(len(plans))]


def _prepare(
    plans: list[RunPlan], dataset: Dataset | TextDataset | None, hooks: Callback
) -> tuple[list[RunPlan], Dataset | TextDataset, dict[str, str]]:
    """The runs' device and task, their data (continued runs copied, frozen features made) and the
    files of the data as read (its vocabulary) that each run folder keeps; the callbacks may refuse
    the data and task (``setup``)."""
    config = plans[0].config
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    processes = distributed.current()
    device = resolve_device(config.train.device)
    if device.type == "cuda" and processes.world_size > 1:
        device = torch.device("cuda", processes.local_rank)
    if dataset is None:
        dataset = load_run_data(config)
    if processes.is_main:
        for plan in plans:
            continue_run(plan, dataset)
    if processes.world_size > 1:
        torch.distributed.barrier()  # the other processes resume from what the main one copied
    if processes.is_main:
        for plan in plans:
            plan.folder.check_data(getattr(dataset, "details", {}).get("fingerprint"))
    task = build_task(config, dataset)
    plans = [replace(plan, device=device, task=task) for plan in plans]
    hooks.setup([plan.config for plan in plans], dataset, task)
    if not config.train.threads:
        threads.use_free_cores_if_asked()
    run_files = task.run_files(dataset)  # of the data as read (its vocabulary), frozen or not
    if config.model.freeze:
        dataset = freeze_features(config, dataset, task, device)
    return plans, dataset, run_files


def _groups(
    plans: list[RunPlan], dataset: Dataset | TextDataset, stacked: bool
) -> Iterable[list[tuple[int, SeedRun]]]:
    """The runs (with their place in ``plans``) in the groups that train together."""
    if stacked:
        # A crash between two seeds' checkpoint writes leaves them a check apart: each step's
        # seeds train together.
        by_step: dict[int, list[tuple[int, SeedRun]]] = {}
        for j, plan in enumerate(plans):
            run = SeedRun.build(plan, dataset)
            by_step.setdefault(run.progress.step, []).append((j, run))
        return by_step.values()
    # One at a time: a long list of runs never holds more than one model in memory.
    return ([(j, SeedRun.build(plan, dataset))] for j, plan in enumerate(plans))


def _train_group(
    group: list[SeedRun],
    dataset: Dataset | TextDataset,
    timetable: Schedule,
    run_files: dict[str, str],
    show_progress: bool,
    hooks: Callback,
) -> list[dict[str, Any]]:
    """Train one group of runs (one, or seeds side by side) to the end; their summaries."""
    processes = distributed.current()
    task, device = group[0].plan.task, group[0].plan.device
    if processes.is_main:
        for run in group:
            run.folder.start(run.config)
            for name, text in run_files.items():
                run.folder.write_text_file(name, text)
    together = len(group) > 1
    layout = Stacked(group, task, device) if together else Single(group[0], task, device)
    # One count serves every seed of a group: the seeds share the architecture and the data.
    counted = flops_per_example(
        group[0].network,
        task,
        timetable.train,
        group[0].config.seed,
        timetable.batch_size,
        step_options(group[0].config, 0),
    )
    for run in group:
        run.flops_per_example = counted
    display = ProgressDisplay(
        _describe(group, together),
        total_steps=timetable.total_steps,
        num_train=timetable.num_train,
        epochs=timetable.epochs,
        initial=group[0].progress.step,
        enabled=show_progress and processes.is_main,
        metrics=task.metrics,
    )
    # The methods' epoch-end updates first, the progress display last. The callbacks (the trackers
    # of train.log_to among them) hear of each run's earlier records now, of each check once it is
    # on disk, and of the results once written.
    hooks = Callbacks([_EpochEnd(layout), hooks, display])
    hooks.on_run_start(group)
    failed = True
    try:
        run_loop(layout, task, timetable, writes=processes.is_main, device=device, callbacks=hooks)
        summaries = []
        for s, run in enumerate(group):
            size = sum(p.numel() for p in run.network.parameters())
            summary = summarize(run.config, run.progress, dataset, task, device, size)
            summary["processes"] = processes.world_size
            if together:
                summary["batched_seeds"] = len(group)
            if processes.is_main:
                warn_if_at_chance(run, task, timetable)
                finish(run, summary, layout.predictor(s), task, timetable)
            summaries.append(summary)
        if processes.is_main:
            hooks.on_run_end(group, summaries)
        failed = False
    finally:
        hooks.on_close(group, failed)
    return summaries


class _EpochEnd(Callback):
    """The methods' epoch-level state (ols, lwr, lwal, pskd: ``Method.on_epoch_end``), updated
    through the layout that holds them (side by side, each seed's own)."""

    def __init__(self, layout: Single | Stacked) -> None:
        self.layout = layout

    def on_epoch_end(self, runs: list[SeedRun]) -> None:
        self.layout.on_epoch_end()


def _describe(runs: list[SeedRun], together: bool) -> str:
    seeds = describe_seeds([run.config.seed for run in runs])
    return f"{runs[0].config.method.name} {seeds}" + (" (batched)" if together else "")
