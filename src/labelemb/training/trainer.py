"""Entry points: train one run, the seeds of one config side by side, or any list of configs.

Each takes configs or plans: a config is checked where its run is planned (:func:`plan_runs`, the one
boundary), a :class:`~labelemb.assembly.plan.RunPlan` is a run that passed it already (the grid's)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..assembly.plan import RunPlan, plan_run, resolve
from ..callbacks import Callback, Callbacks, with_defaults
from ..config import RunConfig, check_extras
from ..data import Dataset
from ..data.text.sequences import TextDataset
from ..rundir import RunDir, claim_alone, first_missing, in_turns
from ..tasks import Task
from . import distributed
from .continuation import source_run
from .recipe import build_seed_run, train_owned
from .seed_run import Progress, SeedRun
from .side_by_side import check_batchable, stacking_key, unsupported_reason

logger = logging.getLogger(__name__)

#: A run as the entry points take it: a config (checked here) or a plan (checked already).
Run = RunConfig | RunPlan


def train(
    config: Run,
    *,
    dataset: Dataset | TextDataset | None = None,
    on_checkpoint: Callable[[Progress], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train one (method, seed) run to the end, resuming from its checkpoint if one exists.

    Writes the run folder (:mod:`labelemb.rundir`) under :meth:`RunConfig.run_dir` and returns
    the summary; a finished run's summary is read back without training. ``on_checkpoint`` is
    called with the run's progress after every checkpoint is safely on disk. ``callbacks``
    (:class:`labelemb.callbacks.Callback`) are called after those every run gets.
    """
    handed = list(callbacks)
    if on_checkpoint is not None:
        handed.append(_OnCheckpoint(lambda progress: on_checkpoint(progress[0])))
    show = config_of(config).train.progress
    return _train([config], dataset, stacked=False, show_progress=show, callbacks=handed)[0]


def train_unless_held(config: Run) -> dict[str, Any] | None:
    """:func:`train`, or None at once if another process is training this run."""
    show = config_of(config).train.progress
    return _train([config], None, stacked=False, show_progress=show, skip_held=True)[0]


def train_batched(
    configs: Sequence[Run],
    *,
    dataset: Dataset | TextDataset | None = None,
    progress: bool = True,
    on_checkpoint: Callable[[list[Progress]], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> list[dict[str, Any]]:
    """Train the seeds of one config side by side in this process; return their summaries in order.

    ``configs`` must differ only in ``seed`` (or the method's options, ``train.lr`` and the
    experiment: settings side by side; else :class:`BatchedConfigError`) and be supported
    (:func:`~labelemb.training.side_by_side.supports_batched`). Each seed's run folder gets what
    :func:`train` writes, with the same numbers up to floating-point rounding. Finished seeds are
    read back; seeds with checkpoints (batched or not) resume, those at the same step side by
    side; a seed left alone at its step trains as a run of its own. ``on_checkpoint`` is called
    with the seeds' progress after each evaluation's checkpoints of a side-by-side group are on disk;
    ``callbacks`` are called after those every run gets, as :func:`train`'s.
    """
    check_batchable([config_of(config) for config in configs])
    show = progress and config_of(configs[0]).train.progress
    handed = [*([] if on_checkpoint is None else [_OnCheckpoint(on_checkpoint)]), *callbacks]
    return _train(list(configs), dataset, stacked=True, show_progress=show, callbacks=handed)


def train_seeds(
    configs: Sequence[Run],
    *,
    batched: bool = True,
    dataset: Dataset | TextDataset | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every config; return the summaries in order.

    With ``batched``, configs that differ only in ``seed``, and in the method's own options, the
    learning rate and the experiment they are written to (a tuning round's trials), train side by
    side when their setting allows (:func:`~labelemb.training.side_by_side.unsupported_reason`); the others
    (and every config without ``batched``) train one after another, with a logged note saying why.
    Every config is checked before any of them trains.
    """
    plans = plan_runs(configs)
    summaries: dict[int, dict[str, Any]] = {}
    groups: dict[str, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(json.dumps(stacking_key(plan.config), sort_keys=True), []).append(i)
    for members in groups.values():
        group = [plans[i] for i in members]
        first = group[0].config
        folders = {plan.folder.path for plan in group}
        reason = unsupported_reason(first) if batched else None
        if batched and reason is None and len(folders) == len(group) and len(group) > 1:
            results = train_batched(group, dataset=dataset, progress=progress)
        else:
            if batched and reason is not None:
                seeds = [plan.config.seed for plan in group]
                logger.warning("%s seeds %s train one after another: %s", first.method.name, seeds, reason)
            show = progress and first.train.progress
            results = [_train([plan], dataset, stacked=False, show_progress=show)[0] for plan in group]
        summaries.update(zip(members, results))
    return [summaries[i] for i in range(len(configs))]


def config_of(run: Run) -> RunConfig:
    return run.config if isinstance(run, RunPlan) else run


def plan_runs(
    runs: Sequence[Run], *, devices_here: bool = True, callbacks: Callback | None = None
) -> list[RunPlan]:
    """The boundary where runs are checked, all before any trains: each config resolved into its
    plan (:func:`~labelemb.assembly.plan.resolve`: its names, options and, with ``devices_here``, its
    device), then its folder checked (:func:`preflight`); a plan, a run that passed here already,
    is taken as it is."""
    plans = [run if isinstance(run, RunPlan) else resolve(run, devices_here=devices_here) for run in runs]
    preflight([plan for plan, run in zip(plans, runs) if plan is not run], callbacks=callbacks)
    return plans


def preflight(plans: Sequence[RunPlan], *, callbacks: Callback | None = None) -> None:
    """Fail before any data is read or model built: what the callbacks cannot serve (``callbacks``,
    default those every run gets: a tracker's package), an optional package a run needs
    (:func:`~labelemb.config.extras.check_extras`), a run folder that cannot be written or
    holds a run of another config, or of other data, a run to continue from that cannot be."""
    (callbacks or Callbacks(with_defaults())).check([plan.config for plan in plans])
    check_extras([plan.config for plan in plans])  # a package a run needs: its extra, in one line
    for plan in plans:
        config, folder = plan.config, plan.folder
        folder.check_writable()
        if any(key.startswith("data.") for key in folder.config_differences(config)):
            # Its data read first, so that a mistyped path or a broken file is reported as itself
            # ("train file images/trian not found") rather than as a folder of other data.
            plan.data.load()
        folder.check_config(config)
        recorded = folder.recorded_fingerprint()
        if recorded is not None:
            # A finished run is read back, not trained: only this keeps it from reporting old
            # numbers for files that were edited since.
            fingerprint = plan.data.fingerprint()
            if fingerprint is not None and fingerprint != recorded:
                plan.data.load()
                folder.refuse_other_data(fingerprint)
        source_run(plan)  # a run to continue from, if asked for, that can be continued


def _train(
    configs: list[Run],
    dataset: Dataset | TextDataset | None,
    *,
    stacked: bool,
    show_progress: bool,
    callbacks: Sequence[Callback] = (),
    skip_held: bool = False,
) -> list[dict[str, Any] | None]:
    """Train ``configs`` (side by side where ``stacked`` and they stand at the same step).

    A run another process is training is left to it (:func:`~labelemb.rundir.in_turns`): trained
    after this process's own runs, once that process lets go of it (read back if it finished), or,
    with ``skip_held``, returned as None. ``callbacks`` are called after those every run gets.
    """
    hooks = Callbacks(with_defaults(callbacks))
    plans = plan_runs(configs, callbacks=hooks)
    # What this command creates, so an error before training leaves no empty run folder behind.
    first_created = [first_missing(plan.folder.path) for plan in plans]

    def train_mine(mine: list[int]) -> list[dict[str, Any]]:
        for i in mine:
            plans[i].folder.check_config(plans[i].config)  # written meanwhile by another process?
        try:
            return train_owned([plans[i] for i in mine], dataset, stacked, show_progress, hooks)
        except BaseException:
            if distributed.current().is_main:
                for i in mine:
                    plans[i].folder.discard_unstarted(first_created[i])
            raise

    return in_turns([plan.folder for plan in plans], train_mine, claim=_claim, skip_held=skip_held)


def _claim(folder: RunDir, owned: contextlib.ExitStack, wait: bool) -> bool:
    """:func:`~labelemb.rundir.claim_alone`; under torchrun the processes of one job train the run
    together, and the main one owns it for all."""
    processes = distributed.current()
    if processes.world_size == 1:
        return claim_alone(folder, owned, wait)
    if processes.is_main:
        claim_alone(folder, owned, wait=True)
    torch.distributed.barrier()
    return True


class _OnCheckpoint(Callback):
    """A function of the runs' progress, called at every check (``train(on_checkpoint=...)``)."""

    def __init__(self, call: Callable[[list[Progress]], None]) -> None:
        self.call = call

    def on_check(self, runs: list[Any]) -> None:
        self.call([run.progress for run in runs])


def build_run(config: RunConfig, dataset: Dataset | TextDataset, device: torch.device, task: Task) -> SeedRun:
    """One run of ``config`` on ``device``, with ``task``'s rows, seeded, built and (if its folder
    has a checkpoint) restored, as the trainer builds it (what a bench or a test trains)."""
    return build_seed_run(plan_run(config, device, task), dataset)
