"""Which configs train side by side (:class:`~labelemb.training.stacked.Stacked`): asked of the
configs themselves, where the trainer groups them, before any is resolved into a plan."""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import methods, models
from ..config import RunConfig
from ..methods.abilities import Stackable
from . import distributed


class BatchedConfigError(ValueError):
    """The configs given to the batched trainer cannot train as one batched run."""


def stacks(model: nn.Module | type[nn.Module]) -> bool:
    """Whether a backbone (or its class) runs S seeds side by side: it has ``stacked_forward``."""
    return callable(getattr(model, "stacked_forward", None))


def batched_models() -> list[str]:
    """The registered backbones that stack, by name."""
    return [name for name in models.available() if stacks(models.model_class(name))]


def unsupported_reason(config: RunConfig) -> str | None:
    """Why the seeds of ``config`` cannot train stacked, or None if they can."""
    batched = batched_models()
    if not config.model.freeze and config.model.name not in batched:
        return (
            f"model {config.model.name!r} is not batched (batched models: {', '.join(batched)}, "
            "or any backbone with model.freeze)"
        )
    if not config.model.freeze and config.model.dense is not None:
        return "model.dense on a trained backbone runs in the sequential trainer only (frozen: batched)"
    try:
        method_class = methods.method_class(config.method.name)
    except ValueError as error:
        return str(error)
    if not issubclass(method_class, Stackable):
        return f"method {config.method.name!r} does not run on stacked seeds (its class is not stackable)"
    augment = config.data.augment
    if augment.crop_padding or augment.flip or augment.mean is not None:
        return "data augmentation runs in the sequential trainer only"
    if config.train.precision != "fp32":
        return f"precision {config.train.precision!r} runs in the sequential trainer only"
    if config.train.channels_last or config.train.compile:
        return "channels_last and compile are options of the sequential trainer"
    if config.train.early_stopping is not None:
        return "early stopping stops each seed at its own check; the batched trainer steps its seeds together"
    if config.train.clip_grad_norm is not None:
        return "gradient clipping (train.clip_grad_norm) runs in the sequential trainer only"
    if distributed.current().world_size > 1:
        return "several processes (torchrun) split one run's batches in the sequential trainer"
    return None


def supports_batched(config: RunConfig) -> bool:
    """Whether the seeds of ``config`` can train batched (a backbone that stacks, fp32, no augmentation)."""
    return unsupported_reason(config) is None


def stacking_key(config: RunConfig) -> dict[str, Any]:
    """What configs trained side by side share: all but the seed, the folder they are written to,
    the method's own options (which each setting keeps: :class:`~labelemb.training.stacked.StackedSettings`)
    and the learning rate (each row steps at its own: :class:`~labelemb.training.stacked.Stacked`),
    unless the backbone's rate is set outright (``model.lr``), which no share of train.lr gives."""
    values = config.model_dump(mode="json")
    for key in ("seed", "experiment", "output_dir"):
        values.pop(key)
    values["method"] = {"name": config.method.name}
    values["methods"].pop(config.method.name, None)
    if config.model.lr is None:
        values["train"].pop("lr")
    return values
