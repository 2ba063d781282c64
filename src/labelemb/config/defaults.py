"""What a config leaves out and its backbone decides: the learning rate a run takes when the config
gives no ``train.lr``.

``train.lr``'s own default (1e-3, Adam's) trains the image and MLP backbones; a backbone that
trains poorly at it declares the rate it trains at as ``default_lr`` (a class attribute), and a
config of that backbone without ``train.lr`` takes it. The config then holds that rate, so its
dump, ``config.yaml`` of the run, says what the run trained at.
"""

from __future__ import annotations

from .. import models
from .schema import RunConfig


def backbone_lr(name: str) -> float | None:
    """The ``train.lr`` backbone ``name`` declares for a config that gives none, or None."""
    lr = getattr(models.model_class(name), "default_lr", None)
    return None if lr is None else float(lr)


def with_backbone_defaults(config: RunConfig) -> RunConfig:
    """``config`` with its backbone's ``train.lr`` where the config gives none (a checked config:
    its backbone exists); as it is otherwise."""
    if "lr" in config.train.model_fields_set:
        return config
    lr = backbone_lr(config.model.name)
    if lr is None:
        return config
    return config.model_copy(update={"train": config.train.model_copy(update={"lr": lr})})
