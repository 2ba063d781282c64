"""Backbones: each maps inputs to features ``(N, out_features)``; the method owns the output layer.

Every model exposes ``out_features`` and ``output_init_std`` (the released code's std for the
output layer that follows it, or None for PyTorch's default). Image backbones are built for an
input shape ``(C, H, W)``; the sequence model for ``(source vocabulary, target vocabulary)``.
"""

from __future__ import annotations

import inspect

from torch import nn

from .cnn import CNN
from .mlp import MLP
from .resnet import ResNet, ResNet8, ResNet18
from .seq2seq import Seq2Seq

_MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "cnn": CNN,
    "resnet8": ResNet8,
    "resnet18": ResNet18,
    "seq2seq": Seq2Seq,
}
#: Constructor parameters a backbone gets from the data, not from its config options.
INPUT_PARAMETERS = ("self", "input_shape", "source_vocabulary", "target_vocabulary")
#: Backbones of sequence-to-sequence tasks (trained on text corpora).
SEQUENCE_MODELS = ("seq2seq",)


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
    """Build backbone ``name`` for inputs of shape ``input_shape``: (C, H, W) for an image backbone,
    (source vocabulary size, target vocabulary size) for a sequence model."""
    cls = model_class(name)
    parameters = inspect.signature(cls.__init__).parameters
    known = [p for p in parameters if p not in INPUT_PARAMETERS]
    unknown = sorted(set(model_options) - set(known))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; its options are: {', '.join(known)}"
        )
    if "input_shape" in parameters:
        return cls(tuple(input_shape), **model_options)
    return cls(*input_shape, **model_options)


__all__ = [
    "CNN",
    "INPUT_PARAMETERS",
    "MLP",
    "SEQUENCE_MODELS",
    "ResNet",
    "ResNet8",
    "ResNet18",
    "Seq2Seq",
    "available",
    "build_model",
    "model_class",
]
