"""Methods: each maps backbone features and labels to a loss and prediction scores.

Build one by name with :func:`build`; list the names with :func:`available`.

The top of this package is the contract and the machinery every method shares: ``base`` (the
:class:`Method` contract, :class:`~labelemb.methods.base.Rows`), ``targets`` (the base of the
methods that only change the target), ``abilities`` (the opt-in mixins a trainer asks for),
``inputs`` (a batch's check), ``multi_hot`` (a batch of tag sets), ``shared_options``,
``registry`` (the names), ``chunked`` (heads worked through in chunks of rows), ``finite``,
``processes``, ``per_example``, ``batch_shapes`` and ``tensor_files``. Each other module is one
method, and a method of several files is a package (``label_embedding/``).

There is one way in: every module of this package and of its subpackages is imported here, so a
method file's ``@register`` is all it takes to add one. The method classes are read from the
registry under their class names (``labelemb.methods.OneHot``), never imported by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..registry import import_modules
from .base import LabelRangeError, LinearOutputMethod, Method, MethodOutput, trust_batches
from .label_embedding.fixed import load_embedding  # a function of the method's package, not a method
from .registry import (
    METHODS,
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

if TYPE_CHECKING:  # for type checkers and the API pages; at run time, __getattr__ reads the registry
    from .confidence_penalty import ConfidencePenalty as ConfidencePenalty
    from .label_embedding import LabelEmbedding as LabelEmbedding
    from .label_embedding import LabelEmbeddingFixed as LabelEmbeddingFixed
    from .label_smoothing import LabelSmoothing as LabelSmoothing
    from .lwal import LearningWithAdaptiveLabels as LearningWithAdaptiveLabels
    from .lwr import LearningWithRetrospection as LearningWithRetrospection
    from .ols import OnlineLabelSmoothing as OnlineLabelSmoothing
    from .onehot import OneHot as OneHot
    from .static_label import StaticLabel as StaticLabel
    from .tfkd_reg import TfKDReg as TfKDReg

import_modules(__name__, __path__)


def _method_classes() -> dict[str, type[Method]]:
    """Every method class this package registers, under its class name (a preset shares its
    method's class; a method registered from elsewhere stays where it is defined)."""
    return {
        entry.thing.__name__: entry.thing
        for entry in METHODS.entries()
        if isinstance(entry.thing, type) and entry.thing.__module__.startswith(f"{__name__}.")
    }


def __getattr__(name: str) -> Any:
    classes = _method_classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_method_classes()})


__all__ = [
    "LabelRangeError",
    "LinearOutputMethod",
    "Method",
    "MethodOutput",
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
    "trust_batches",
    "why_not_serving",
    *sorted(_method_classes()),
]
