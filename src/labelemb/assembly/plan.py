"""A run resolved once: its config checked and turned, in this one place, into the typed parts of a
plan (:mod:`labelemb.assembly.parts`): the device, the data request, the backbone and method factories,
Adam and its schedule, the batch pipeline, the loop's arithmetic, a frozen backbone's features.

:func:`resolve` is where a run's config is checked (every name and option against the registries,
:func:`~labelemb.config.check_buildable`; its device against this machine) before any data is read;
below it nothing takes the config apart: each part is handed where it is used. The plan keeps the
config as the run's record only: what its folder holds and is compared with, what the callbacks
and the task's ``for_run`` are handed (their documented arguments).

The trainer's entry points resolve a config at one boundary (:func:`~labelemb.training.trainer.plan_runs`,
which checks the run folders too) and take a plan as a run that passed it: the grid resolves every
run before any trains and hands its plans on, and its workers plan their units' configs again
(:func:`plan_run`: the parts without the checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import methods, models
from ..config import RUN_CONTEXT_OPTIONS, EarlyStoppingConfig, RunConfig, check_buildable
from ..data.augment import Augment
from ..data.files.options import FilesOptions
from ..data.registry import DataRequest
from ..rundir import RunDir
from ..tasks import Task
from ..tasks.decode import DecodeOptions
from .parts import (
    Backbone,
    DataSource,
    FrozenFeatures,
    MethodFactory,
    Optimiser,
    Placement,
    Steps,
    Timing,
    resolve_device,
)


@dataclass(frozen=True)
class RunPlan:
    """One (method, seed) run resolved: its record (``config``) and folder, the parts it is built
    and trained from, and, once the trainer knows them, the device it trains on and its task."""

    config: RunConfig
    folder: RunDir
    experiment: str
    seed: int
    placement: Placement
    data: DataSource
    backbone: Backbone
    method: MethodFactory
    optimiser: Optimiser
    steps: Steps
    timing: Timing
    #: A frozen backbone's features (None: the backbone trains).
    features: FrozenFeatures | None
    #: best_dev or final: which check a run reports.
    selection: str
    early_stopping: EarlyStoppingConfig | None
    #: The experiment folder of a shorter run this one starts from (None: from scratch).
    continue_from: str | None
    device: torch.device | None = None
    task: Task | None = None


def resolve(config: RunConfig, *, devices_here: bool = True) -> RunPlan:
    """The plan of a run of ``config``, checked: every name and option exists and fits
    (:func:`~labelemb.config.check_buildable`) and, with ``devices_here``, this machine has its
    device (without: the runs train on other machines, which check theirs); each mistake one
    :class:`~labelemb.config.ConfigError` line, before any data is read."""
    check_buildable(config)
    plan = plan_run(config)
    if devices_here:
        resolve_device(plan.placement.device)
    return plan


def plan_run(config: RunConfig, device: torch.device | None = None, task: Task | None = None) -> RunPlan:
    """The plan of a run of ``config`` (not checked: :func:`resolve` checks), with its folder
    (:meth:`RunConfig.run_dir`)."""
    train = config.train
    return RunPlan(
        config=config,
        folder=RunDir(config.run_dir()),
        experiment=config.experiment,
        seed=config.seed,
        placement=Placement(train.device, train.threads, train.deterministic),
        data=data_of(config),
        backbone=backbone_of(config),
        method=method_of(config),
        optimiser=optimiser_of(config),
        steps=steps_of(config),
        timing=timing_of(config),
        features=features_of(config) if config.model.freeze else None,
        selection=config.selection,
        early_stopping=train.early_stopping,
        continue_from=train.continue_from,
        device=device,
        task=task,
    )


def data_of(config: RunConfig) -> DataSource:
    """What a config asks of its data: the data set's own option sections (checked), and what the
    rest of the run decides that reading must know. Relative file names are looked for beside the
    config file."""
    data = config.data
    request = DataRequest(
        dir=data.dir,
        download=data.download,
        max_train_pairs=data.max_train_pairs,
        search=tuple(folder for folder in (config.source_folder,) if folder),
        sections=config.data_sections(),
        # A pretrained text encoder reads its own tokenizer's ids, not the data set's word ids.
        text_encoder=models.model_text_encoder(config.model.name, config.options("model")),
        eval_source_limit=config.section(DecodeOptions).max_source_tokens,
        progress=config.train.progress,
    )
    return DataSource(data.name, request, config.noise)


def backbone_of(config: RunConfig) -> Backbone:
    model = config.model
    return Backbone(model.name, config.options("model"), model.dense, model.freeze, config.source_folder)


def method_of(config: RunConfig) -> MethodFactory:
    name, given = config.method.name, config.options("method")
    accepted = methods.options(name)
    told = tuple(key for key in RUN_CONTEXT_OPTIONS if key in accepted and key not in given)
    return MethodFactory(name, given, told, timing_of(config))


def timing_of(config: RunConfig) -> Timing:
    train = config.train
    return Timing(train.batch_size, train.epochs, train.max_steps, train.eval_every, train.eval_batch_size)


def optimiser_of(config: RunConfig) -> Optimiser:
    train = config.train
    return Optimiser(
        lr=train.lr,
        adam=train.adam,
        backbone_lr_given=config.model.lr,
        backbone_scale=config.model.lr_scale,
        milestones=tuple(train.lr_milestones),
        gamma=train.lr_gamma,
        clip_grad_norm=train.clip_grad_norm,
    )


def steps_of(config: RunConfig) -> Steps:
    spec, train = config.data.augment, config.train
    augment = None
    if spec.crop_padding or spec.flip or spec.mean is not None:
        augment = Augment(crop_padding=spec.crop_padding, flip=spec.flip, mean=spec.mean, std=spec.std)
    return Steps(
        augment, train.precision, train.channels_last, train.compile, config.model.freeze, train.cuda_graphs
    )


def features_of(config: RunConfig) -> FrozenFeatures:
    """A frozen backbone's features as ``config`` computes them (whether or not it freezes one)."""
    spec, train = config.data.augment, config.train
    return FrozenFeatures(
        backbone=backbone_of(config),
        mean=spec.mean,
        std=spec.std,
        precision=train.precision,
        batch_size=train.eval_batch_size,
        cache_dir=config.section(FilesOptions).cache_dir,
        progress=train.progress,
    )
