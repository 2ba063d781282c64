"""The typed parts of a run's plan (:class:`~labelemb.assembly.plan.RunPlan`): each holds what one
piece of training needs of the config, taken from it once where the run is resolved
(:func:`~labelemb.assembly.plan.resolve`), and makes that piece: the device a run trains on, the
data it reads, the backbone and the method (seeded first: :func:`seed_everything`), Adam and its
schedule, the batch pipeline of a step, the loop's arithmetic, a frozen backbone's features. Nothing
here reads a config.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .. import methods, models
from ..config import ConfigError
from ..data import Dataset
from ..data.augment import Augment
from ..data.label_noise import NoiseConfig, add_label_noise
from ..data.registry import DataRequest, data_fingerprint, load
from ..data.text.sequences import TextDataset
from .graphs import Step, graphed
from .network import Replicas, StepOptions
from .sparse_adam import RowSparseAdam


@dataclass(frozen=True)
class Placement:
    """Where a run trains: ``train.device`` (checked against this machine where the run is
    resolved, :func:`resolve_device`), ``train.threads`` (None: as many as the process has) and
    ``train.deterministic``."""

    device: str = "auto"
    threads: int | None = None
    deterministic: bool = True  # train.deterministic (labelemb.training.determinism)


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


@dataclass(frozen=True)
class DataSource:
    """The data a run reads: the data set's name and what is asked of it (its checked option
    sections, where its files are looked for, what the rest of the run decides reading must know)."""

    name: str
    request: DataRequest
    #: The training labels' noise (the config's ``noise:``); None: the labels as the data gives them.
    noise: NoiseConfig | None = None

    def load(self) -> Dataset | TextDataset:
        return self.with_noise(load(self.name, self.request))

    def with_noise(self, dataset: Any) -> Any:
        """``dataset`` (as loaded, or handed to the trainer) with the noise asked for on its labels
        (a copy; the same data set where none is asked or it carries it already)."""
        if self.noise is None or getattr(dataset, "noise", None) is not None:
            return dataset
        return add_label_noise(dataset, self.noise, self.request)

    def fingerprint(self) -> str | None:
        """The digest of what :meth:`load` would read, without reading it (None: not computable)."""
        return data_fingerprint(self.name, self.request)


@dataclass(frozen=True)
class Timing:
    """The loop's arithmetic as the config sets it: the batch size, the ceiling of epochs, a cap
    on the updates, how often a run is checked (examples; None: each epoch's end), and the batch
    size of evaluation."""

    batch_size: int
    epochs: int
    max_steps: int | None = None
    eval_every: int | None = None
    eval_batch_size: int = 1000

    def total_updates(self, num_train: int) -> int:
        """The updates a run makes: every batch of every epoch, or ``max_steps`` if fewer."""
        updates = math.ceil(num_train / self.batch_size) * self.epochs
        return min(updates, self.max_steps or updates)


@contextlib.contextmanager
def importable_from(folder: str | None) -> Iterator[None]:
    """``folder`` (the config file's) on the import path, last, while a backbone is built: a
    ``custom`` factory kept beside the config (``factory: mynets:small_cnn``) imports from any
    working directory, and never shadows an installed module of the same name."""
    if folder is None or folder in sys.path:
        yield
        return
    sys.path.append(folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


@dataclass(frozen=True)
class Backbone:
    """The backbone's factory: a registered model by name with its own options, what the harness
    puts around it (a dense layer of ``dense`` units; frozen, only the head side trains on its
    features) and ``folder``, the config file's, that a custom factory is imported from."""

    name: str
    options: dict[str, Any]
    dense: int | None = None
    freeze: bool = False
    folder: str | None = None

    def build(self, input_shape: tuple[int, ...], copies: int = 1) -> nn.Module:
        """The network's backbone side: the named model (and its dense layer), or the head side of
        a frozen one, which reads its features; ``copies`` of it, each drawn on its own, side by
        side (:class:`~labelemb.assembly.network.Replicas`) where a method trains that many networks."""
        if copies > 1:
            return Replicas([self.build(input_shape) for _ in range(copies)])
        if self.freeze:
            return models.feature_head(self.name, input_shape, self.dense, self.options)
        model = self.named(input_shape)
        if self.dense is not None:
            model = models.WithDense(model, self.dense)
        return model

    def named(self, input_shape: tuple[int, ...]) -> nn.Module:
        """The named model alone (what a frozen backbone computes features with)."""
        with importable_from(self.folder):
            return models.build_model(self.name, input_shape, **self.options)


#: What a method may be told of the run that the ceiling ``train.epochs`` sets.
CEILING_CONTEXT = ("epochs", "total_updates")


def noise_context(dataset: Any) -> dict[str, Any]:
    """What a method is told of its training labels' noise (None for clean labels): the share of
    training labels that are wrong (``noise_rate``, a fraction: what Co-teaching's authors take as
    known) and the transition matrix (``noise_transition``: the one the noise was drawn from, else
    the one the labels show), as forward correction takes it given."""
    told = getattr(dataset, "told_noise", None)
    if told:  # a finished run rebuilt without its data: what it was told then
        return {"noise_rate": told.get("noise_rate"), "noise_transition": told.get("noise_transition")}
    noise = getattr(dataset, "noise", None)
    if noise is None:
        return {"noise_rate": None, "noise_transition": None}
    matrix = noise.transition if noise.transition is not None else noise.realised
    rate = noise.rate("train", dataset.train.labels) / 100.0
    return {"noise_rate": rate, "noise_transition": [[float(v) for v in row] for row in matrix]}


def recorded_noise_context(kept: dict[str, Any]) -> dict[str, Any]:
    """:func:`noise_context` as a finished run's ``label_noise.safetensors`` (``kept``, the tensors
    :meth:`~labelemb.data.label_noise.NoisyLabels.tensors` wrote) gives it back: the same rate and
    matrix, so that a method built from them (Co-teaching's forget rate, forward correction's
    matrix) is rebuilt as it trained."""
    wrong = (kept["train_noisy"] != kept["train_clean"]).double()
    matrix = kept["transition"] if "transition" in kept else kept["realised"]
    return {
        "noise_rate": float(wrong.mean()) if wrong.numel() else 0.0,
        "noise_transition": [[float(v) for v in row] for row in matrix.double().tolist()],
    }


@dataclass(frozen=True)
class MethodFactory:
    """The method's factory: its name, the options the config gives it, and ``told``, what it takes
    of what the run knows (:data:`~labelemb.config.RUN_CONTEXT_OPTIONS`: the data's size, the
    ceiling of ``timing``, the backbone's init) and the config leaves out."""

    name: str
    options: dict[str, Any]
    told: tuple[str, ...]
    timing: Timing

    def options_for(self, dataset: Any, init_std: float | None = None) -> dict[str, Any]:
        """The method's options on ``dataset``: the config's, and what it is told of the run."""
        context = {
            "init_std": init_std,
            "num_examples": len(dataset.train),
            "epochs": self.timing.epochs,
            "total_updates": self.timing.total_updates(len(dataset.train)),
            "class_names": list(dataset.class_names),
            "tag_sets": bool(getattr(dataset, "multi_label", False)),
            **noise_context(dataset),
        }
        return {**self.options, **{key: context[key] for key in self.told}}

    def build(self, in_features: int, dataset: Any, init_std: float | None = None) -> methods.Method:
        options = self.options_for(dataset, init_std)
        return methods.build(self.name, in_features=in_features, num_classes=dataset.num_classes, **options)


def build_pair(backbone: Backbone, method: MethodFactory, dataset: Any) -> tuple[nn.Module, methods.Method]:
    """The backbone and the method of a run on ``dataset``; the method's output layer starts at the
    backbone's init (its ``output_init_std``) unless its options set it. A method that trains
    several networks together (its class's ``backbones``: co-teaching's 2) gets as many copies of
    the backbone, their features side by side (:class:`~labelemb.assembly.network.Replicas`)."""
    copies = getattr(methods.method_class(method.name), "backbones", 1)
    model = backbone.build(dataset.input_shape, copies)
    return model, method.build(model.out_features, dataset, getattr(model, "output_init_std", None))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device): a run's random state, set before its
    pieces are built, so that the same seed on the same machine gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Optimiser:
    """Adam and its learning-rate schedule: ``lr``; the backbone's own rate where it has one
    (``backbone_lr`` outright, or ``backbone_scale`` x ``lr``: ``model.lr`` / ``model.lr_scale``);
    the implementation (``train.adam``); the epochs at which the rate is multiplied by ``gamma``;
    and the norm the gradient is clipped to (None: not clipped)."""

    lr: float
    adam: Literal["fused", "classic"] = "fused"
    backbone_lr_given: float | None = None
    backbone_scale: float | None = None
    milestones: tuple[int, ...] = ()
    gamma: float = 0.2
    clip_grad_norm: float | None = None

    def at(self, lr: float) -> Optimiser:
        """This optimiser at another ``lr`` (the backbone's scaled rate follows it)."""
        return replace(self, lr=lr)

    def backbone_lr(self) -> float | None:
        """The backbone's learning rate if it differs from ``lr``, else None."""
        if self.backbone_lr_given is not None:
            return self.backbone_lr_given
        if self.backbone_scale is not None:
            return self.backbone_scale * self.lr
        return None

    def groups(self, named: Iterable[tuple[str, Tensor]]) -> list[Any]:
        """What Adam updates: every parameter at ``lr``, or, where the backbone has a rate of its
        own, two groups: the backbone's (``model.*`` but a dense layer's) at that rate and the rest
        at ``lr``. Order within each is the network's."""
        named = list(named)
        backbone_lr = self.backbone_lr()
        if backbone_lr is None:
            return [parameter for _, parameter in named]
        in_backbone = [pretrained_part(name) for name, _ in named]
        backbone = [parameter for (_, parameter), inside in zip(named, in_backbone) if inside]
        head = [parameter for (_, parameter), inside in zip(named, in_backbone) if not inside]
        return [{"params": backbone, "lr": backbone_lr}, {"params": head}]

    def make(self, parameters: list[Any]) -> torch.optim.Adam:
        """Adam over ``parameters`` (:meth:`groups`): the fused kernel where their device has one,
        or classic. Fused, an update reads and writes each element once instead of in several
        passes; it rounds differently from the classic implementation in the last bits. A
        parameter whose gradient comes out sparse (a term table's rows) steps lazily, as
        :class:`~labelemb.assembly.sparse_adam.RowSparseAdam` says."""
        if self.adam == "fused":
            try:
                return RowSparseAdam(parameters, lr=self.lr, fused=True)
            except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
                return RowSparseAdam(parameters, lr=self.lr, foreach=True)
        return RowSparseAdam(parameters, lr=self.lr)

    def schedule(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(self.milestones), self.gamma)


def pretrained_part(name: str) -> bool:
    """Whether a network's parameter ``name`` is the backbone's own (``model.*``, in any of its
    replicas), which trains at the backbone's rate: a dense layer (``model.dense``) is new, not
    pretrained, and trains with the head."""
    if not name.startswith("model."):
        return False
    inside = re.sub(r"^copies\.\d+\.", "", name.removeprefix("model."))
    return not inside.startswith("dense.")


@dataclass(frozen=True)
class Steps:
    """How a training step treats its batch: the augmentation (images; None: none), the precision,
    channels_last, and whether the network trains on a frozen backbone's features (then a batch goes
    in as it is); and how the step runs: compiled (``train.compile``, the sequential trainer's) or
    replayed as CUDA graphs (``train.cuda_graphs``, :mod:`labelemb.assembly.graphs`)."""

    augment: Augment | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    frozen: bool = False
    cuda_graphs: bool = False

    def compiled(self, step: Step, device: torch.device) -> Step:
        """``step`` (a module or function of the training step) as the run's settings run it:
        replayed as CUDA graphs, compiled, or ``step`` itself; the module stays what is saved."""
        if self.cuda_graphs:
            return graphed(step, device)
        if self.compile:
            return torch.compile(step)  # type: ignore[return-value]
        return step

    def options(self, seed: int) -> StepOptions:
        """The batch pipeline of a run of ``seed``, whose augmentation generator it seeds."""
        autocast = torch.bfloat16 if self.precision == "bf16" else None
        if self.frozen:
            # The features were computed (normalised) once; nothing is done to them per batch.
            return StepOptions(autocast=autocast)
        augment = self.augment
        return StepOptions(
            augment=augment,
            generator=torch.Generator().manual_seed(seed + 7_919) if augment is not None else None,
            autocast=autocast,
            channels_last=self.channels_last,
        )


@dataclass(frozen=True)
class FrozenFeatures:
    """A frozen backbone's features (``model.freeze``): the backbone, the per-channel
    normalisation evaluation applies to an image (``mean``, ``std``; None: none), the precision and
    batch size they are computed at, the cache's folder (``data.files.cache_dir``; None: the
    default) and whether a bar shows them being computed."""

    backbone: Backbone
    mean: list[float] | None
    std: list[float] | None
    precision: Literal["fp32", "bf16"]
    batch_size: int
    cache_dir: str | None
    progress: bool
