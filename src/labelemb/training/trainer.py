"""The entry point: train one run or several, the seeds of one config side by side.

It takes configs or plans: a config is checked where its run is planned (:func:`plan_runs`, the one
boundary), a :class:`~labelemb.assembly.plan.RunPlan` is a run that passed it already (the grid's)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, overload

import torch

from ..assembly.plan import RunPlan, plan_run, resolve
from ..callbacks import Callback, Callbacks, with_defaults
from ..config import RunConfig, check_extras
from ..data import Dataset
from ..data.text.sequences import TextDataset
from ..rundir import RunDir, claim_alone, first_missing, in_turns
from ..tasks import Task
from . import distributed
from .batched import stacking_key, unsupported_reason
from .continuation import source_run
from .recipe import build_seed_run, train_owned
from .seed_run import Progress, SeedRun

logger = logging.getLogger(__name__)

#: A run as the entry points take it: a config (checked here) or a plan (checked already).
Run = RunConfig | RunPlan
#: What a run gives back: its summary.json as a mapping.
Summary = dict[str, Any]


class RunHeld(RuntimeError):
    """Another process is training these runs (:func:`train` with ``wait_for_held=False``): the
    runs this process could train are finished; those in ``folders`` are left to the other."""

    def __init__(self, folders: Sequence[RunDir]) -> None:
        self.folders = list(folders)
        names = ", ".join(str(folder.path) for folder in self.folders)
        super().__init__(f"another process is training {names}; train again once it lets go")


@overload
def train(
    runs: Run,
    *,
    batched: bool = True,
    dataset: Dataset | TextDataset | None = None,
    progress: bool = True,
    on_checkpoint: Callable[[Progress], None] | None = None,
    callbacks: Sequence[Callback] = (),
    wait_for_held: bool = True,
) -> Summary: ...


@overload
def train(
    runs: Sequence[Run],
    *,
    batched: bool = True,
    dataset: Dataset | TextDataset | None = None,
    progress: bool = True,
    on_checkpoint: Callable[[list[Progress]], None] | None = None,
    callbacks: Sequence[Callback] = (),
    wait_for_held: bool = True,
) -> list[Summary]: ...


def train(
    runs: Run | Sequence[Run],
    *,
    batched: bool = True,
    dataset: Dataset | TextDataset | None = None,
    progress: bool = True,
    on_checkpoint: Callable[[Any], None] | None = None,
    callbacks: Sequence[Callback] = (),
    wait_for_held: bool = True,
) -> Summary | list[Summary]:
    """Train runs to the end, each resuming from its checkpoint; the one entry point for training.

    ``runs`` is one run or a sequence of them, each a config (checked here) or a plan (a run
    that passed the check already: the grid's); every run is checked before any trains
    (:func:`plan_runs`). One run gives its summary back, a sequence a list in its order. Each run
    writes its folder (:mod:`labelemb.rundir`) under :meth:`RunConfig.run_dir`; a finished run's
    summary is read back without training.

    With ``batched``, runs that differ only in ``seed``, the method's own options, ``train.lr``
    and the experiment they are written to (the seeds of one config; a tuning round's trials)
    train side by side in this process where their setting allows
    (:func:`~labelemb.training.batched.unsupported_reason`), with the same numbers up to
    floating-point rounding; the others train one after another, with a logged note saying why.
    Runs with checkpoints (side by side or not) resume, those at the same step side by side; a
    run left alone at its step trains as a run of its own.

    ``progress`` False hides the bars a run's ``train.progress`` would show. ``on_checkpoint`` is
    called after each check's checkpoints are safely on disk, with the run's progress (one run) or
    the list of the runs' trained together (a sequence). ``callbacks``
    (:class:`labelemb.callbacks.Callback`) are called after those every run gets. A run another
    process is training is waited for, or, without ``wait_for_held``, left to it: the others
    train and :class:`RunHeld` names it.
    """
    if isinstance(runs, (RunConfig, RunPlan)):
        each = None if on_checkpoint is None else lambda checked: on_checkpoint(checked[0])
        return train(
            [runs],
            dataset=dataset,
            progress=progress,
            on_checkpoint=each,
            callbacks=callbacks,
            wait_for_held=wait_for_held,
        )[0]
    handed = [*([] if on_checkpoint is None else [_OnCheckpoint(on_checkpoint)]), *callbacks]
    plans = plan_runs(runs, callbacks=Callbacks(with_defaults(handed)))
    trained: list[tuple[int, Summary | None]] = []
    for members, together in batched_groups(plans, batched):
        show = progress and plans[members[0]].config.train.progress
        for group in [members] if together else [[i] for i in members]:
            group_plans = [plans[i] for i in group]
            results = _train(group_plans, together, dataset, show, handed, skip_held=not wait_for_held)
            trained += zip(group, results)
    held = [plans[i].folder for i, summary in trained if summary is None]
    if held:
        raise RunHeld(held)
    summaries = {i: summary for i, summary in trained if summary is not None}
    return [summaries[i] for i in range(len(plans))]


def batched_groups(plans: Sequence[RunPlan], batched: bool) -> list[tuple[list[int], bool]]:
    """The positions of the runs that train together, in turn, and whether side by side: with
    ``batched``, runs that stack (:func:`stacking_key`) in folders of their own, where their
    setting allows; each group whose setting does not is logged with the reason."""
    groups: dict[str, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(json.dumps(stacking_key(plan.config), sort_keys=True), []).append(i)
    together = []
    for members in groups.values():
        first = plans[members[0]].config
        folders = {plans[i].folder.path for i in members}
        reason = unsupported_reason(first) if batched else None
        if batched and reason is not None and len(members) > 1:
            seeds = [plans[i].config.seed for i in members]
            logger.warning("%s seeds %s train one after another: %s", first.method.name, seeds, reason)
        stacks = batched and reason is None and len(folders) == len(members) > 1
        together.append((members, stacks))
    return together


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
    plans: list[RunPlan],
    stacked: bool,
    dataset: Dataset | TextDataset | None,
    show_progress: bool,
    callbacks: Sequence[Callback],
    *,
    skip_held: bool,
) -> list[Summary | None]:
    """Train ``plans`` (side by side where ``stacked`` and they stand at the same step).

    A run another process is training is left to it (:func:`~labelemb.rundir.in_turns`): trained
    after this process's own runs, once that process lets go of it (read back if it finished), or,
    with ``skip_held``, returned as None. ``callbacks`` are called after those every run gets.
    """
    hooks = Callbacks(with_defaults(callbacks))
    # What this command creates, so an error before training leaves no empty run folder behind.
    first_created = [first_missing(plan.folder.path) for plan in plans]

    def train_mine(mine: list[int]) -> list[Summary]:
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
