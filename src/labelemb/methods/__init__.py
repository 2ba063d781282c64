"""Methods: each maps backbone features and labels to a loss and prediction scores.

Build one by name with :func:`build`; list the names with :func:`available`. Every module of
this package is imported here, so a method file's ``@register`` is all it takes to add one.
"""

from __future__ import annotations

from ..registry import import_modules
from .base import LabelRangeError, LinearOutputMethod, Method, MethodOutput
from .confidence_penalty import ConfidencePenalty
from .label_embedding import LabelEmbedding
from .label_embedding_fixed import LabelEmbeddingFixed, load_embedding
from .label_smoothing import LabelSmoothing
from .lwal import LearningWithAdaptiveLabels
from .lwr import LearningWithRetrospection
from .ols import OnlineLabelSmoothing
from .onehot import OneHot
from .registry import (
    available,
    build,
    method_builder,
    method_class,
    options,
    preset_options,
    register,
    search_space,
    serving,
    why_not_serving,
)
from .static_label import StaticLabel
from .tfkd_reg import TfKDReg

import_modules(__name__, __path__)

__all__ = [
    "ConfidencePenalty",
    "LabelEmbedding",
    "LabelEmbeddingFixed",
    "LabelRangeError",
    "LabelSmoothing",
    "LearningWithAdaptiveLabels",
    "LearningWithRetrospection",
    "LinearOutputMethod",
    "Method",
    "MethodOutput",
    "OneHot",
    "OnlineLabelSmoothing",
    "StaticLabel",
    "TfKDReg",
    "available",
    "build",
    "load_embedding",
    "method_builder",
    "method_class",
    "options",
    "preset_options",
    "register",
    "search_space",
    "serving",
    "why_not_serving",
]
