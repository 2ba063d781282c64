"""Backbones: each maps inputs to features ``(N, out_features)``; the method owns the output layer.

Every model exposes ``out_features`` and ``output_init_std`` (the released code's std for the
output layer that follows it, or None for PyTorch's default). Image backbones are built for an
input shape ``(C, H, W)``; the sequence model for ``(source vocabulary, target vocabulary)``.
Every module of this package is imported here, so a model file's ``@register`` is all it takes
to add one.
"""

from __future__ import annotations

from ..registry import import_modules
from .cnn import CNN
from .features import FeatureHead, WithDense
from .mlp import MLP
from .registry import (
    INPUT_PARAMETERS,
    MODELS,
    available,
    build_model,
    feature_head,
    model_class,
    model_inputs,
    model_options,
    model_text_encoder,
    register,
)
from .resnet import ResNet, ResNet8, ResNet18
from .seq2seq import Seq2Seq

import_modules(__name__, __path__)

__all__ = [
    "CNN",
    "FeatureHead",
    "INPUT_PARAMETERS",
    "MLP",
    "MODELS",
    "ResNet",
    "ResNet8",
    "ResNet18",
    "Seq2Seq",
    "WithDense",
    "available",
    "build_model",
    "feature_head",
    "model_class",
    "model_inputs",
    "model_options",
    "model_text_encoder",
    "register",
]
