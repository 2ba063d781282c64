"""Methods: each maps backbone features and labels to a loss and prediction scores.

Build one by name with :func:`build`; list the names with :func:`available`.
"""

from __future__ import annotations

import inspect

from .base import LabelRangeError, LinearOutputMethod, Method, MethodOutput
from .confidence_penalty import ConfidencePenalty
from .label_embedding import LabelEmbedding
from .label_embedding_fixed import LabelEmbeddingFixed, load_embedding
from .label_smoothing import LabelSmoothing
from .lwal import LearningWithAdaptiveLabels
from .lwr import LearningWithRetrospection
from .ols import OnlineLabelSmoothing
from .onehot import OneHot
from .static_label import StaticLabel
from .tfkd_reg import TfKDReg

_REGISTRY: dict[str, tuple[type[Method], dict[str, object]]] = {}


def register(name: str, cls: type[Method], **preset: object) -> type[Method]:
    """Make ``cls`` buildable as ``build(name, ...)``.

    ``preset`` options make a named setting of a method (e.g. ``lwal10`` = ``lwal`` with
    ``dim_factor=10``): it gets its own name, run folders and row in comparisons, and the user
    can still override each option.
    """
    if name in _REGISTRY and _REGISTRY[name] != (cls, preset):
        raise ValueError(f"a method named {name!r} is already registered ({_REGISTRY[name][0].__name__})")
    unknown = sorted(set(preset) - set(_keyword_options(cls)))
    if unknown:
        raise ValueError(f"preset {name!r}: {cls.__name__} has no option(s) {', '.join(unknown)}")
    if not preset:
        cls.name = name
    _REGISTRY[name] = (cls, dict(preset))
    return cls


def available() -> list[str]:
    """Names of every registered method and preset."""
    return sorted(_REGISTRY)


def _keyword_options(cls: type[Method]) -> dict[str, object]:
    signature = inspect.signature(cls.__init__)
    return {
        p.name: p.default for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def options(name: str) -> dict[str, object]:
    """The keyword options of method ``name`` and their defaults (``Parameter.empty``: required)."""
    cls, preset = _lookup(name)
    return {**_keyword_options(cls), **preset}


def method_class(name: str) -> type[Method]:
    """The class registered under ``name``."""
    return _lookup(name)[0]


def _lookup(name: str) -> tuple[type[Method], dict[str, object]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available())}") from None


def build(name: str, *, in_features: int, num_classes: int, **method_options: object) -> Method:
    """Build method ``name`` on ``in_features``-wide features for ``num_classes`` classes."""
    known = options(name)
    unknown = sorted(set(method_options) - set(known))
    if unknown:
        raise ValueError(
            f"method {name!r} has no option(s) {', '.join(unknown)}; its options are: "
            + ", ".join(f"{k}={v!r}" if v is not inspect.Parameter.empty else k for k, v in known.items())
        )
    settings = {**_lookup(name)[1], **method_options}
    missing = [k for k, v in known.items() if v is inspect.Parameter.empty and k not in settings]
    if missing:
        raise ValueError(f"method {name!r} needs option(s) {', '.join(missing)}, e.g. {missing[0]}=...")
    return method_class(name)(in_features, num_classes, **settings)


register("onehot", OneHot)
register("label_embedding", LabelEmbedding)
register("label_embedding_fixed", LabelEmbeddingFixed)
register("label_smoothing", LabelSmoothing)
register("confidence_penalty", ConfidencePenalty)
register("tfkd_reg", TfKDReg)
register("static_label", StaticLabel)
register("ols", OnlineLabelSmoothing)
register("lwr", LearningWithRetrospection)
register("lwal", LearningWithAdaptiveLabels)
# The LwAL paper's named settings (Section "Experiments"): 10x label dimension, and with repel.
register("lwal10", LearningWithAdaptiveLabels, dim_factor=10)
register("lwal10_rpl", LearningWithAdaptiveLabels, dim_factor=10, repel=10.0)

__all__ = [
    "LabelEmbedding",
    "LabelEmbeddingFixed",
    "LabelSmoothing",
    "LearningWithAdaptiveLabels",
    "LearningWithRetrospection",
    "OnlineLabelSmoothing",
    "ConfidencePenalty",
    "StaticLabel",
    "TfKDReg",
    "LabelRangeError",
    "LinearOutputMethod",
    "Method",
    "MethodOutput",
    "OneHot",
    "available",
    "build",
    "load_embedding",
    "method_class",
    "options",
    "register",
]
