"""Method names: each class registers itself (and its named presets) where it is defined."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from .base import Method

M = TypeVar("M", bound=type[Method])

_REGISTRY: dict[str, tuple[type[Method], dict[str, object]]] = {}


def register(name: str, **preset: object) -> Callable[[M], M]:
    """Class decorator: make the method buildable as ``build(name, ...)``.

    ``@register("onehot")`` above a class names it. Called again on a class with ``preset``
    options, ``register("lwal10", dim_factor=10)(LearningWithAdaptiveLabels)``, it makes a named
    setting of the method: its own name, run folders and row in comparisons; the user can still
    override each option.
    """

    def decorate(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] != (cls, preset):
            raise ValueError(f"a method named {name!r} is already registered ({_REGISTRY[name][0].__name__})")
        unknown = sorted(set(preset) - set(_keyword_options(cls)))
        if unknown:
            raise ValueError(f"preset {name!r}: {cls.__name__} has no option(s) {', '.join(unknown)}")
        if not preset:
            cls.name = name
        _REGISTRY[name] = (cls, dict(preset))
        return cls

    return decorate


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
