"""The config's schema: a run's sections validated with pydantic, frozen; the sections that data sets
and tasks declare read by their own schemas; every key a config may hold."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..data.cleaning import CleanOptions
from ..data.label_noise import NoiseConfig
from ..data.registry import dataset_yields
from ..data.registry import option_schemas as data_option_schemas
from ..data.registry import option_sections as data_sections
from ..options import Options, OptionsError, OptionsT, read_options
from ..registry import unknown_key_message
from ..tasks.registry import option_schemas as task_option_schemas
from ..tasks.registry import option_sections as task_sections
from ..tasks.registry import task_class
from .clean_step import BOTH, CleanStep
from .ood_sets import OodSetConfig


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message says which key and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentConfig(_Strict):
    """Training-batch augmentation on the device (the released CIFAR code's crop and flip); eval only
    normalises."""

    crop_padding: int = Field(0, ge=0)
    flip: bool = False
    mean: list[float] | None = None
    std: list[float] | None = None


class DataConfig(BaseModel):
    """Which data set, where its files are, how much of it trains, and the augmentation; the rest
    are sections of the data set's own options (``data.files``, ``data.text``), declared beside it
    (:mod:`labelemb.options`) and checked against their schema here."""

    model_config = ConfigDict(extra="allow")
    name: str = "digits"
    dir: str | None = None
    download: bool = True
    #: Train on the first this many training examples (pairs, for text) only: for quick runs.
    max_train_pairs: int | None = Field(None, ge=1)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    clean: CleanOptions | None = None

    @model_validator(mode="after")
    def _sections(self) -> DataConfig:
        _read_sections(self, data_sections(), "data.")
        return self

    def sections(self) -> dict[str, Options]:
        """The option sections the config gives, checked (each data set's schema), by name."""
        return dict(self.model_extra or {})


class ModelConfig(BaseModel):
    """Backbone name plus its options (checked against the model's signature when built), and what
    the harness does around any backbone: its own learning rate when it should differ from the
    head's (fine-tuning a pretrained backbone: ``lr`` outright, or ``lr_scale`` times ``train.lr``),
    a dense layer between its features and the method's head, and freezing it."""

    model_config = ConfigDict(extra="allow")
    name: str = "mlp"
    lr: float | None = Field(None, gt=0)
    lr_scale: float | None = Field(None, gt=0)
    #: One dense layer of this width (ReLU) between the backbone's features and the method's head
    #: (the LwAL text protocol's Dense(768)); null: the head reads the features.
    dense: int | None = Field(None, ge=1)
    #: Compute the backbone's features once per split, in eval mode, cache them on disk and train
    #: only what follows (the dense layer and the method's head) on them.
    freeze: bool = False

    @model_validator(mode="after")
    def _one_learning_rate(self) -> ModelConfig:
        if self.lr is not None and self.lr_scale is not None:
            raise ValueError("give model.lr or model.lr_scale, not both")
        if self.freeze and (self.lr is not None or self.lr_scale is not None):
            raise ValueError(
                "model.lr / model.lr_scale set the backbone's learning rate, but model.freeze keeps it "
                "fixed: drop one (the head trains at train.lr)"
            )
        return self


#: The model section's keys the harness reads itself; the rest are the backbone's own options.
HARNESS_MODEL_KEYS = ("lr", "lr_scale", "dense", "freeze")


class MethodConfig(BaseModel):
    """Method name plus its options (checked against the method's signature when built)."""

    model_config = ConfigDict(extra="allow")
    name: str = "label_embedding"


class EarlyStoppingConfig(_Strict):
    """Stop a run when its selection metric (dev error, dev BLEU, ...) has not improved by more
    than ``min_delta`` for ``patience`` checks in a row; ``train.epochs`` stays the ceiling."""

    patience: int = Field(..., ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(_Strict):
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(100, ge=1)
    lr: float = Field(1e-3, gt=0)
    #: Evaluate on dev and test every this many training examples; None = at each epoch's end.
    eval_every: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(1000, ge=1)
    #: Stop after this many updates (a quick run); None: train all the epochs.
    max_steps: int | None = Field(None, ge=1)
    #: Clip the gradient's global L2 norm to this before each update (the text release: 5).
    clip_grad_norm: float | None = Field(None, gt=0)
    #: Multiply the learning rate by ``lr_gamma`` at these epochs.
    lr_milestones: list[int] = Field(default_factory=list)
    lr_gamma: float = 0.2
    device: str = "auto"
    #: Adam's implementation: "fused" (one kernel per update, where torch has it for the device,
    #: else "foreach"; the default) or "classic" (torch's default implementation, with which the
    #: results recorded before the key existed were made). They differ in the last bits.
    adam: Literal["fused", "classic"] = "fused"
    #: bf16 autocasts the forward pass (CUDA or CPU); channels_last is a CUDA speed-up; compile runs
    #: backbone and method through torch.compile (on CPU it needs a C++ compiler).
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    #: Each step replayed as CUDA graphs where there is CUDA (labelemb.assembly.graphs).
    cuda_graphs: bool = False
    #: Same seed, same numbers on a GPU too (labelemb.training.determinism); false: faster there.
    deterministic: bool = True
    threads: int | None = Field(None, ge=1)
    progress: bool = True
    #: {patience: N checks, min_delta: 0}; null: train every epoch.
    early_stopping: EarlyStoppingConfig | None = None
    #: An experiment folder of finished runs of this config to a lower ``epochs``: each new run
    #: starts from the same (method, seed) run's last checkpoint there (labelemb.training.continuation).
    continue_from: str | None = None
    #: Keep a finished run's checkpoint (the optimiser's state: what train.continue_from starts
    #: from). false: removed once the run's results are written, its weights kept; for models whose
    #: optimiser state is large (a learned TF-IDF table's Adam moments: ~0.9 GB a run).
    keep_checkpoint: bool = True
    #: Experiment trackers each run also logs to (labelemb.tracking): tensorboard (event files
    #: in the run folder), mlflow (<output_dir>/mlflow.db unless a tracking URI is given), trackio
    #: (its local store unless a server is given). A list, or one comma-separated string; the names
    #: are the trackers' registry's, checked before a run starts (labelemb.tracking.require).
    log_to: list[str] = Field(default_factory=list)
    #: MLflow's tracking server (http://host:5000) or store; null: $MLFLOW_TRACKING_URI, else local.
    mlflow_tracking_uri: str | None = None
    #: A self-hosted Trackio server's URL; null: $TRACKIO_SERVER_URL, else Trackio's local store.
    trackio_server_url: str | None = None

    @field_validator("log_to", mode="before")
    @classmethod
    def _tracker_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # train.log_to=tensorboard,mlflow
            value = [name.strip() for name in value.split(",") if name.strip()]
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            value = list(dict.fromkeys(value))  # each tracker once
        return value

    @field_validator("device")
    @classmethod
    def _a_device(cls, name: str) -> str:
        if name != "auto":
            try:
                torch.device(name)
            except RuntimeError:
                raise ValueError(f"{name!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from None
        return name


class RunConfig(BaseModel):
    """A run: its name and seed, where it is written, and the sections of the data, the backbone,
    the method and training; a task's own options (the sequence task's ``decode``) are sections
    at the top, declared beside the task and checked against their schema here."""

    model_config = ConfigDict(extra="allow", frozen=True)
    experiment: str = "demo"
    seed: int = 0
    output_dir: str = "runs"
    #: best_dev: test error at the best dev check (the paper's MNIST protocol); final: last check.
    selection: Literal["best_dev", "final"] = "best_dev"
    #: The dev metric that selects the check; null: the task's own (dev_error for classification,
    #: dev BLEU / ROUGE-L for text). Text classification also takes dev_macro_f1.
    selection_metric: str | None = None
    #: Out-of-distribution sets scored at the end of the run (labelemb.evaluation.run); they
    #: change no training result.
    ood: list[OodSetConfig] = Field(default_factory=list)
    #: Corrupted copies of the test split scored at the end of the run (labelemb.evaluation.shift):
    #: suites (mnist-c, severities, text), corruption names, name@3, name@all; they change no
    #: training result.
    shift: list[str] = Field(default_factory=list)
    #: A file of test rows whose labels people disputed (a JSON list of indices, or of objects with
    #: an ``id``; or one index per line): the evaluation says where the selected weights rank them
    #: among their least confident predictions. It changes no training result.
    disputed_test_labels: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    #: Noise on the training labels (labelemb.data.label_noise); null: the labels as the data gives them.
    noise: NoiseConfig | None = None
    #: Make a list of wrong labels first and train on the data it cleans (.clean_step); null: none.
    clean: CleanStep | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    #: Options of each method by name, used when that method runs (so that one config serves
    #: ``compare --methods onehot,label_embedding`` with each method's own options); the method
    #: section's options, given to whichever method runs, take precedence.
    methods: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: The folder of the config file it was read from (None: not read from a file): a user's data
    #: files are looked for there first. Not a key of the file: left out of every dump (the run
    #: folder's config.yaml, what a run is compared by); a copy (``model_copy``, ``with_*``) keeps it.
    source_folder: str | None = Field(default=None, exclude=True)

    @field_validator("ood")
    @classmethod
    def _distinct_ood_names(cls, sets: list[OodSetConfig]) -> list[OodSetConfig]:
        labels = [entry.label for entry in sets]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"two ood sets are called {', '.join(twice)}: give each its own name")
        return sets

    @model_validator(mode="after")
    def _one_cleaning(self) -> RunConfig:
        if self.clean is not None and self.data.clean is not None:
            raise PydanticCustomError("labelemb_config", "{message}", {"message": BOTH})
        return self

    @model_validator(mode="after")
    def _task_sections(self) -> RunConfig:
        _read_sections(self, task_sections(), "")
        return self

    def data_sections(self) -> dict[str, Options]:
        """Every option section of the data set this config names, as given or its defaults."""
        given, schemas = self.data.sections(), data_option_schemas(self.data.name)
        sections = {schema.section: given.get(schema.section) or schema() for schema in schemas}
        if self.data.clean is not None:  # it cleans the labels that this run's noise makes
            sections[CleanOptions.section] = self.data.clean.after_noise(self.noise)
        return sections

    def task_sections(self) -> dict[str, Options]:
        """Every option section of the task that trains on this config's data, as given or its defaults."""
        given = self.model_extra or {}
        task = task_class(dataset_yields(self.data.name, self.data_sections()))
        return {schema.section: given.get(schema.section) or schema() for schema in task_option_schemas(task)}

    def section(self, schema: type[OptionsT]) -> OptionsT:
        """The section ``schema`` describes (data's or the task's), as given or its defaults."""
        given = {**self.data.sections(), **(self.model_extra or {})}.get(schema.section)
        return given if isinstance(given, schema) else schema()

    def options(self, section: Literal["model", "method"]) -> dict[str, Any]:
        """The options of the model or method section, without its name (for the method, its
        ``methods`` entry under them)."""
        values = getattr(self, section).model_dump()
        name = values.pop("name")
        if section == "method":
            values = {**self.methods.get(name, {}), **values}
        else:
            for harness_key in HARNESS_MODEL_KEYS:
                values.pop(harness_key)
        return values

    def backbone_lr(self) -> float | None:
        """The backbone's learning rate if it differs from ``train.lr`` (``model.lr``, or
        ``model.lr_scale`` x ``train.lr``), else None."""
        if self.model.lr is not None:
            return self.model.lr
        if self.model.lr_scale is not None:
            return self.model.lr_scale * self.train.lr
        return None

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.experiment / self.method.name / f"seed{self.seed}"

    def with_seed(self, seed: int) -> RunConfig:
        """This config with another seed (a copy; the parsed config is data, not text to re-read)."""
        return self.model_copy(update={"seed": seed}, deep=True)

    def with_method(self, name: str) -> RunConfig:
        """This config for another method, keeping the method options (a copy)."""
        return self.model_copy(update={"method": self.method.model_copy(update={"name": name})}, deep=True)

    def comparable(self) -> dict[str, Any]:
        """The parts of the config that change results (not progress bars, output or data paths)."""
        values = self.model_dump(mode="json")
        values.pop("output_dir")
        values["train"].pop("progress")
        # Where a run is also logged to is not what it is: a run resumed with trackers is the same run.
        for key in ("log_to", "mlflow_tracking_uri", "trackio_server_url"):
            values["train"].pop(key)
        # Where a run started from: a continued run is the longer run (the continuation checks it).
        values["train"].pop("continue_from")
        # Whether the resume state outlives the run: the run's numbers are the same either way.
        values["train"].pop("keep_checkpoint")
        # What it is scored against once trained: a run is the same run whatever sets judge it.
        values.pop("ood")
        values.pop("shift")
        values.pop("disputed_test_labels")
        values["data"].pop("dir")
        values["data"].pop("download")
        # Only the sections of this run's data set and task change its results, as given or by default.
        for section in [*self.data.sections(), *(self.model_extra or {})]:
            values["data"].pop(section, None)
            values.pop(section, None)
        try:
            data, task = self.data_sections(), self.task_sections()
        except ValueError:  # a data set not registered in this process: its sections as given
            data, task = self.data.sections(), dict(self.model_extra or {})
        for name, options in data.items():
            values["data"][name] = options.comparable(options.model_dump(mode="json"))
        for name, options in task.items():
            values[name] = options.comparable(options.model_dump(mode="json"))
        # Only the running method's entry changes its results.
        values["methods"] = {k: v for k, v in values["methods"].items() if k == self.method.name}
        return values


def top_level_keys() -> list[str]:
    """The keys a config file may hold at its top (``seed``, ``train``, ...): the fields of
    :class:`RunConfig` that are not left out of its dumps (``source_folder`` is not a key)."""
    return [name for name, field in RunConfig.model_fields.items() if not field.exclude]


def config_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every dotted key of the config (``train.epochs``, ``data.augment.flip``, ``data.files.format``,
    ``decode.beam``: the sections that data sets and tasks declare too)."""
    model = model or RunConfig
    keys = []
    for name, field in model.model_fields.items():
        if field.exclude:  # not a key of the file (RunConfig.source_folder)
            continue
        annotation = field.annotation
        # An optional section (early_stopping: {...} or null) lists its keys too.
        sections = [a for a in typing.get_args(annotation) if isinstance(a, type) and _is_section(a)]
        annotation = sections[0] if sections else annotation
        if isinstance(annotation, type) and _is_section(annotation):
            keys += config_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    declared = {DataConfig: data_sections, RunConfig: task_sections}.get(model)
    if declared is not None:
        for section, schema in declared().items():
            keys += [f"{prefix}{section}.{key}" for key in schema.keys()]
    return keys


def _is_section(annotation: type) -> bool:
    return issubclass(annotation, (_Strict, DataConfig, NoiseConfig, CleanOptions, CleanStep, OodSetConfig))


def _read_sections(model: BaseModel, schemas: dict[str, type[Options]], prefix: str) -> None:
    """Each key of ``model`` beyond its fields, read as the option section of that name."""
    extra = model.__pydantic_extra__ or {}
    for key, raw in extra.items():
        schema = schemas.get(key)
        if schema is None:
            raise PydanticCustomError("labelemb_config", "{message}", {"message": unknown_key(prefix + key)})
        try:
            extra[key] = read_options(schema, raw, prefix + key)
        except OptionsError as error:
            raise PydanticCustomError("labelemb_config", "{message}", {"message": str(error)}) from None


def unknown_key(where: str) -> str:
    """``config key 'trian.epochs' does not exist; did you mean 'train.epochs'?``"""
    return unknown_key_message(where, config_keys())
