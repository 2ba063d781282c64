"""What a run is made of: the device, backbone and method, the optimiser, the batch pipeline."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .. import methods, models
from ..config import ConfigError, RunConfig
from ..data import Dataset
from ..data.augment import Augment
from ..data.registry import DataRequest, load
from ..data.text.sequences import TextDataset
from ..tasks.decode import DecodeOptions


def load_run_data(config: RunConfig) -> Dataset | TextDataset:
    """The data set a config names (:func:`data_request`)."""
    return load(config.data.name, data_request(config))


def data_request(config: RunConfig) -> DataRequest:
    """What a config asks of its data: the data set's own option sections (checked), and what the
    rest of the run decides that reading must know. Relative file names are looked for beside
    the config file."""
    data = config.data
    return DataRequest(
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


def total_updates(config: RunConfig, num_train: int) -> int:
    """The updates a run makes: every batch of every epoch, or ``train.max_steps`` if fewer."""
    updates = math.ceil(num_train / config.train.batch_size) * config.train.epochs
    return min(updates, config.train.max_steps or updates)


def run_model(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The backbone on a batch's inputs: one tensor (images) or a tuple (a sequence model's
    source and target)."""
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


#: The task's rows (:meth:`~labelemb.tasks.Task.rows`): backbone output and targets -> the method's.
Rows = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def network_step(
    backbone: Callable[[Any], Tensor],
    rows: Rows | None,
    method: nn.Module,
    inputs: Tensor | tuple[Tensor, ...],
    targets: Tensor,
    index: Tensor | None,
) -> methods.MethodOutput:
    """The forward chain of a training step, the one for every layout: a batch's ``inputs``
    through the ``backbone`` pass (one run's model, or stacked seeds' grouped pass), its
    features and ``targets`` made the method's rows (``rows``, the task's; None: unchanged), then
    the ``method``'s loss. ``index`` (the batch's rows of its split) reaches the method only if the
    method asks for it (``needs_index``)."""
    features = backbone(inputs)
    if rows is not None:
        features, targets = rows(features, targets)
    return method(features, targets, index=index if method.needs_index else None)


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; a :class:`ConfigError` if this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's message lists every backend it was built with, present or not
        raise ConfigError(
            f"device {name!r} is not a device name; this machine has {', '.join(devices_here())}: "
            "use one of them, or auto"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r} was asked for but this machine has {torch.cuda.device_count()} CUDA "
            "device(s); use cuda:0 or --device auto"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} was asked for but MPS is not available here; use --device cpu")
    return device


def devices_here() -> list[str]:
    """The devices this machine can train on, by the names ``train.device`` takes."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


@contextlib.contextmanager
def config_folder_importable(config: RunConfig) -> Iterator[None]:
    """The config file's folder on the import path, last, while the backbone is built: a
    ``custom`` factory kept beside the config (``factory: mynets:small_cnn``) imports from any
    working directory, and never shadows an installed module of the same name."""
    folder = config.source_folder
    if folder is None or folder in sys.path:
        yield
        return
    sys.path.append(folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def build_network(config: RunConfig, dataset: Dataset | TextDataset) -> tuple[nn.Module, methods.Method]:
    """The backbone and the method of a run; the released output-layer init unless set."""
    if config.model.freeze:
        # The backbone ran once (train.frozen): what trains is the head-side network on its features.
        model = models.FeatureHead(dataset.input_shape, dense=config.model.dense)
    else:
        with config_folder_importable(config):
            model = models.build_model(config.model.name, dataset.input_shape, **config.options("model"))
        if config.model.dense is not None:
            model = models.WithDense(model, config.model.dense)
    options = method_options(config, dataset, getattr(model, "output_init_std", None))
    method = methods.build(
        config.method.name, in_features=model.out_features, num_classes=dataset.num_classes, **options
    )
    return model, method


#: What a method may know of the run that is set by the ceiling ``train.epochs``.
CEILING_CONTEXT = ("epochs", "total_updates")


def method_options(
    config: RunConfig, dataset: Dataset | TextDataset, init_std: float | None = None
) -> dict[str, Any]:
    """The method's options from the config, and what it may need to know of the run (the data
    size, the ceiling, the backbone's init) for the options it takes and the config leaves out."""
    options = config.options("method")
    accepted = methods.options(config.method.name)
    context = {
        "init_std": init_std,
        "num_examples": len(dataset.train),
        "epochs": config.train.epochs,
        "total_updates": total_updates(config, len(dataset.train)),
        "class_names": list(dataset.class_names),
    }
    for key, value in context.items():
        if key in accepted and key not in options:
            options[key] = value
    return options


class Network(nn.Module):
    """Backbone and method as one module: what an optimiser and DistributedDataParallel wrap.

    ``rows`` turns the backbone's output and the targets into the method's rows (the task's
    :meth:`~labelemb.tasks.Task.rows`; by default they pass unchanged).
    """

    def __init__(self, model: nn.Module, method: methods.Method, rows: Rows | None = None) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.rows = rows

    def forward(
        self, inputs: Tensor | tuple[Tensor, ...], targets: Tensor, index: Tensor | None = None
    ) -> methods.MethodOutput:
        return network_step(partial(run_model, self.model), self.rows, self.method, inputs, targets, index)


def parameter_groups(config: RunConfig, named: Iterable[tuple[str, Tensor]]) -> list[Any]:
    """What the optimiser updates: every parameter at ``train.lr``, or, when the backbone has a
    learning rate of its own (:meth:`RunConfig.backbone_lr`), two groups: the backbone's
    (``model.*`` but a dense layer's) at that rate and the rest at ``train.lr``. Order within each
    is the network's."""
    named = list(named)
    backbone_lr = config.backbone_lr()
    if backbone_lr is None:
        return [parameter for _, parameter in named]
    # A dense layer (model.dense) is new, not pretrained: it trains with the head.
    in_backbone = [name.startswith("model.") and not name.startswith("model.dense.") for name, _ in named]
    backbone = [parameter for (_, parameter), inside in zip(named, in_backbone) if inside]
    head = [parameter for (_, parameter), inside in zip(named, in_backbone) if not inside]
    return [{"params": backbone, "lr": backbone_lr}, {"params": head}]


def make_optimizer(config: RunConfig, parameters: list[Any]) -> torch.optim.Adam:
    """Adam as ``train.adam`` asks: the fused kernel where the parameters' device has one, or classic.

    Fused, an update reads and writes each element once instead of in several passes; it rounds
    differently from the classic implementation in the last bits.
    """
    if config.train.adam == "fused":
        try:
            return torch.optim.Adam(parameters, lr=config.train.lr, fused=True)
        except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
            return torch.optim.Adam(parameters, lr=config.train.lr, foreach=True)
    return torch.optim.Adam(parameters, lr=config.train.lr)


def make_scheduler(
    config: RunConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.MultiStepLR:
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, config.train.lr_milestones, config.train.lr_gamma)


@dataclass
class StepOptions:
    """How a batch reaches the network: augmentation and numeric precision."""

    augment: Augment | None = None
    generator: torch.Generator | None = None  # drives the augmentation; checkpointed
    autocast: torch.dtype | None = None  # bf16 or None
    channels_last: bool = False

    def prepare(self, images: Tensor, train: bool) -> Tensor:
        if self.augment is not None:
            images = self.augment(images, self.generator) if train else self.augment(images, train=False)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def precision(self, device: torch.device) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)


def step_options(config: RunConfig, seed: int) -> StepOptions:
    """The batch pipeline a config asks for; the augmentation generator is seeded by the run."""
    spec = config.data.augment
    augment = None
    if config.model.freeze:
        # The features were computed (normalised) once; nothing is done to them per batch.
        return StepOptions(autocast=torch.bfloat16 if config.train.precision == "bf16" else None)
    if spec.crop_padding or spec.flip or spec.mean is not None:
        augment = Augment(crop_padding=spec.crop_padding, flip=spec.flip, mean=spec.mean, std=spec.std)
    return StepOptions(
        augment=augment,
        generator=torch.Generator().manual_seed(seed + 7_919) if augment is not None else None,
        autocast=torch.bfloat16 if config.train.precision == "bf16" else None,
        channels_last=config.train.channels_last,
    )
