"""Continue finished runs to a higher ceiling: ``train.continue_from``.

A run trained to a ceiling of E epochs is, update for update, the first E epochs of the same run
trained to a higher ceiling, as long as nothing in it is set by the ceiling: the epoch orders, the
learning-rate milestones (absolute epochs) and the checkpointed state (weights, optimiser, random
generators, early-stopping counter) are not. So a longer run may start from the shorter run's last
checkpoint instead of from scratch. It is refused where the ceiling does set something: a method
setting derived from ``train.epochs`` (LwR's schedule, a warm-up given as a fraction of training).

One difference stays: the shorter run checked at its last update, which the longer run checks only
if that update falls on its check grid. That check stays in the records, so it can be the selected
one and counts as a check for early stopping.

The recipe's data step is :func:`continue_runs`: the continued runs' folders copied, and every run
folder checked to hold a run of the data read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import methods
from ..assembly.parts import CEILING_CONTEXT, MethodFactory
from ..assembly.plan import RunPlan, method_of
from ..data import Dataset
from ..data.text.sequences import TextDataset
from ..rundir import RunDir, RunDirError, differing_keys
from . import distributed

logger = logging.getLogger(__name__)

#: The config keys in which a continued run may differ from the run it starts from.
CONTINUABLE_KEYS = {"experiment", "train.epochs"}


def source_run(plan: RunPlan) -> RunDir | None:
    """The finished run a new planned run starts from, checked (None without
    ``train.continue_from``, or once the run has started: it then resumes from its own folder)."""
    if plan.continue_from is None or plan.folder.is_started():
        return None
    name, seed, epochs = plan.method.name, plan.seed, plan.timing.epochs
    source = RunDir(Path(plan.continue_from) / name / f"seed{seed}")
    fix = "train it there first, or leave train.continue_from out to train this run from scratch"
    if not source.is_finished() or not source.has_checkpoint():
        raise RunDirError(
            f"train.continue_from: {source.path} holds no finished run of {name} seed {seed} with its "
            f"checkpoint (a run trained with train.keep_checkpoint=false drops it); {fix}"
        )
    # The records compared: the source's saved config and this run's.
    saved = source.read_valid_config(type(plan.config))
    changed = differing_keys(saved.comparable(), plan.config.comparable()) - CONTINUABLE_KEYS
    if changed:
        raise RunDirError(
            f"train.continue_from: the run in {source.path} differs from this one in "
            f"{', '.join(sorted(changed))}; a run can only be continued to a higher train.epochs"
        )
    if epochs <= saved.train.epochs:
        raise RunDirError(
            f"train.continue_from: the run in {source.path} was trained to train.epochs="
            f"{saved.train.epochs}; continue it to more epochs than that (got {epochs})"
        )
    return source


def continue_runs(
    plans: list[RunPlan], dataset: Dataset | TextDataset, processes: distributed.Processes
) -> None:
    """Each continued run's folder copied from the run it continues (by the main process,
    :func:`continue_run`), and every folder checked to hold a run of this data."""
    if processes.is_main:
        for plan in plans:
            continue_run(plan, dataset)
    if processes.world_size > 1:
        torch.distributed.barrier()  # the other processes resume from what the main one copied
    if processes.is_main:
        for plan in plans:
            plan.folder.check_data(getattr(dataset, "details", {}).get("fingerprint"))


def continue_run(plan: RunPlan, dataset: Dataset | TextDataset) -> None:
    """Start a planned run's folder from the last checkpoint of its :func:`source_run` (nothing
    to do without one)."""
    source = source_run(plan)
    if source is None:
        return
    saved = source.read_valid_config(type(plan.config))
    moved = ceiling_set_method_settings(method_of(saved), plan.method, dataset)
    if moved:
        raise RunDirError(
            f"train.continue_from: {plan.method.name}'s {', '.join(moved)} follow from train.epochs, "
            f"so the run in {source.path} is not the start of a run to {plan.timing.epochs} epochs; "
            "set them in the config explicitly, or train this run from scratch"
        )
    target = plan.folder
    target.copy_records_from(source)
    checkpoint = source.read_checkpoint()
    assert checkpoint is not None  # source_run checked it
    checkpoint["progress"]["continued_from"] = {
        "run": str(source.path),
        "step": checkpoint["progress"]["step"],
    }
    target.write_checkpoint(checkpoint)  # last: with it the folder resumes where the source stands
    logger.info("%s: continuing %s from its last checkpoint", target.path, source.path)


def ceiling_set_method_settings(
    shorter: MethodFactory, longer: MethodFactory, dataset: Dataset | TextDataset
) -> list[str]:
    """The settings of the two runs' method that differ because their ceilings do."""
    if not any(key in longer.told for key in CEILING_CONTEXT):
        return []
    shorter_settings, longer_settings = (_method_settings(m, dataset) for m in (shorter, longer))
    return sorted(key for key in longer_settings if shorter_settings.get(key) != longer_settings[key])


def _method_settings(method_factory: MethodFactory, dataset: Dataset | TextDataset) -> dict[str, Any]:
    """What a method holds besides its parameters. Built small (8 features, 2 classes: the
    settings compared are set by the options, not by the sizes), and with the random state put
    back, so that the run's own build draws what it would have drawn."""
    with torch.random.fork_rng(devices=[]):
        options = method_factory.options_for(dataset)
        method = methods.build(method_factory.name, in_features=8, num_classes=2, **options)
    return {
        key: value
        for key, value in vars(method).items()
        if not key.startswith("_") and not isinstance(value, (torch.Tensor, nn.Module))
    }
