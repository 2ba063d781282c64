"""Backbones: each maps inputs to features ``(N, out_features)``; the method owns the output layer.

Every model exposes ``out_features`` and ``output_init_std`` (the released code's std for the
output layer that follows it, or None for PyTorch's default).
"""

from __future__ import annotations

import inspect

from torch import nn

from .cnn import CNN
from .mlp import MLP
from .resnet import ResNet, ResNet8, ResNet18

_MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN, "resnet8": ResNet8, "resnet18": ResNet18}


def available() -> list[str]:
    """Names of the built-in backbones."""
    return sorted(_MODELS)


def model_class(name: str) -> type[nn.Module]:
    """The backbone class named ``name``."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def build_model(name: str, input_shape: tuple[int, ...], **model_options: object) -> nn.Module:
    """Build backbone ``name`` for inputs of shape ``input_shape`` (C, H, W)."""
    cls = model_class(name)
    known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "input_shape")]
    unknown = sorted(set(model_options) - set(known))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; its options are: {', '.join(known)}"
        )
    return cls(tuple(input_shape), **model_options)


__all__ = ["CNN", "MLP", "ResNet", "ResNet8", "ResNet18", "available", "build_model", "model_class"]
