"""Method names: each class registers itself (and its named presets) where it is defined."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..registry import Registry, check_options, keyword_options
from ..search_spaces import Space
from .base import ROW_KINDS, Method
from .multi_hot import tags_reason

M = TypeVar("M", bound=type[Method])

#: Every method and named preset; an entry's ``info`` holds a preset's options.
METHODS: Registry[type[Method]] = Registry("method")


def register(name: str, **preset: object) -> Callable[[M], M]:
    """Class decorator: make the method buildable as ``build(name, ...)``.

    ``@register("onehot")`` above a class names it. Called again on a class with ``preset``
    options, ``register("lwal10", dim_factor=10)(LearningWithAdaptiveLabels)``, it makes a named
    setting of the method: its own name, run folders and row in comparisons; the user can still
    override each option.
    """

    def decorate(cls: M) -> M:
        unknown = sorted(set(preset) - set(_keyword_options(cls)))
        if unknown:
            raise ValueError(f"preset {name!r}: {cls.__name__} has no option(s) {', '.join(unknown)}")
        METHODS.register(name, **preset)(cls)
        if not preset:
            cls.name = name
        return cls

    return decorate


def available() -> list[str]:
    """Names of every registered method and preset."""
    return METHODS.names()


def serving(kind: str) -> list[str]:
    """Names of the methods and presets (as :func:`available` lists them) that can be the output
    layer for rows of ``kind``: ``"class"`` (one example a row), ``"token"`` (a sequence model's
    target tokens, a vocabulary wide) or ``"tags"`` (one example a row, its target a multi-hot tag
    set: the methods with the :class:`~labelemb.methods.abilities.MultiHot` ability)."""
    _check_kind(kind)
    return [name for name in available() if kind in method_class(name).serves]


def why_not_serving(name: str, kind: str) -> str | None:
    """Why method ``name`` cannot be the output layer for rows of ``kind``, or None if it can."""
    _check_kind(kind)
    cls = method_class(name)
    if kind in cls.serves:
        return None
    # A method of one's own that never heard of tag sets still gets a reason.
    return tags_reason(cls) if kind == "tags" else cls.cannot_serve[kind]


def _check_kind(kind: str) -> None:
    if kind not in ROW_KINDS:
        raise ValueError(f"unknown kind of rows {kind!r}; methods serve {', '.join(map(repr, ROW_KINDS))}")


def _keyword_options(cls: type[Method]) -> dict[str, object]:
    return keyword_options(cls.__init__, keyword_only=True)


def options(name: str) -> dict[str, object]:
    """The keyword options of method ``name`` and their defaults (``Parameter.empty``: required)."""
    entry = METHODS.entry(name)
    return {**_keyword_options(entry.thing), **entry.info}


def method_class(name: str) -> type[Method]:
    """The class registered under ``name``."""
    return METHODS.get(name)


def build(name: str, *, in_features: int, num_classes: int, **method_options: object) -> Method:
    """Build method ``name`` on ``in_features``-wide features for ``num_classes`` classes."""
    known = options(name)
    check_options(f"method {name!r}", known, method_options)
    settings = {**METHODS.entry(name).info, **method_options}
    missing = [k for k, v in known.items() if v is inspect.Parameter.empty and k not in settings]
    if missing:
        raise ValueError(f"method {name!r} needs option(s) {', '.join(missing)}, e.g. {missing[0]}=...")
    return method_class(name)(in_features, num_classes, **settings)


#: What a trial build (:func:`method_builder`) gives a method of the run's context when the caller
#: does not: a tiny training set's size, its epochs and its updates (the trainer passes the run's own).
PROBE_CONTEXT: dict[str, object] = {"num_examples": 8, "epochs": 10, "total_updates": 100, "noise_rate": 0.2}


def search_space(name: str, options: Mapping[str, object] | None = None) -> dict[str, Space]:
    """The options method ``name`` searches when tuned, each with its range
    (:class:`~labelemb.search_spaces.Space`).

    The class's ``search_space``, plus its ``search_space_when`` entries whose option has that value
    in ``options`` (the method's options in effect; a preset's and the defaults fill in the rest):
    ``search_space("label_embedding", {"variant": "nlp"})`` adds ``soft_warmup``. A preset's fixed
    options are not searched (``lwal10_rpl`` searches ``update_every``, never ``repel``). A copy.
    """
    entry = METHODS.entry(name)
    cls = entry.thing
    settings = {**_keyword_options(cls), **entry.info, **(options or {})}
    space = dict(cls.search_space)
    for (option, value), extra in cls.search_space_when.items():
        if settings.get(option) == value:
            space.update(extra)
    return {key: value for key, value in space.items() if key not in entry.info}


def preset_options(name: str) -> dict[str, object]:
    """The options preset ``name`` fixes (empty for a method's own name)."""
    return dict(METHODS.entry(name).info)


def method_builder(
    name: str, *, in_features: int = 4, num_classes: int = 3, **fixed: object
) -> Callable[[dict[str, Any]], Method]:
    """A function that builds method ``name`` with the options it is given over ``fixed`` (the run's
    own, or what the method needs: ``embedding=`` for label_embedding_fixed) and
    :data:`PROBE_CONTEXT` for those of it the method takes: what :func:`labelemb.search_spaces.check_space`
    tries each bound with. It raises what :func:`build` raises when the method refuses them."""
    accepted = options(name)
    context = {key: value for key, value in PROBE_CONTEXT.items() if key in accepted and key not in fixed}

    def build_with(values: dict[str, Any]) -> Method:
        return build(name, in_features=in_features, num_classes=num_classes, **{**context, **fixed, **values})

    return build_with
