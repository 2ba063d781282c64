"""Checking a config's model and method options before any work: names, keys, types."""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import typing
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from .. import methods, models
from .config import ConfigError, RunConfig, config_keys

#: Method options the trainer fills in from the run when the config leaves them out.
RUN_CONTEXT_OPTIONS = ("init_std", "num_examples", "epochs", "total_updates", "class_names")


def check_buildable(config: RunConfig) -> None:
    """Raise :class:`ConfigError` unless the config's model and method exist and every option given
    to them is one they take, of a type they accept; checked before any data is read."""
    model_class = _known(config.model.name, models.available(), "model", models.model_class)
    model_options = {
        name: parameter.default
        for name, parameter in inspect.signature(model_class.__init__).parameters.items()
        if name not in models.INPUT_PARAMETERS
    }
    given_to_model = config.options("model")
    _check_options(f"model {config.model.name!r}", model_class, model_options, given_to_model, "model.")
    for name in config.methods:
        _known(name, methods.available(), "method (a key of the methods section)", methods.method_class)
    method_class = _known(config.method.name, methods.available(), "method", methods.method_class)
    accepted = methods.options(config.method.name)
    given = config.options("method")
    _check_options(f"method {config.method.name!r}", method_class, accepted, given, "")
    missing = [
        name
        for name, default in accepted.items()
        if default is inspect.Parameter.empty and name not in given and name not in RUN_CONTEXT_OPTIONS
    ]
    if missing:
        raise ConfigError(
            f"method {config.method.name!r} needs option(s) {', '.join(missing)}: add {missing[0]}=... "
            "to the command line or to the config's method section"
        )
    check_data_fits_model(config)


def check_data_fits_model(config: RunConfig) -> None:
    """A text corpus trains a sequence model with a per-token method, images an image backbone."""
    from ..data import available_datasets, dataset_key
    from ..data.text import LAYOUTS
    from .sequence import check_sequence_method

    text = config.data.name in LAYOUTS
    if not text and dataset_key(config.data.name) not in available_datasets():
        names = [*available_datasets(), *LAYOUTS]
        _known(config.data.name, names, "data set (data.name)", lambda name: type(None))
    sequence_model = config.model.name in models.SEQUENCE_MODELS
    if text and not sequence_model:
        raise ConfigError(
            f"data {config.data.name!r} is a text corpus: it needs model.name=seq2seq, "
            f"not {config.model.name!r}"
        )
    if sequence_model and not text:
        raise ConfigError(
            f"model 'seq2seq' needs a text corpus ({', '.join(LAYOUTS)}), not data {config.data.name!r}"
        )
    if not text:
        return
    reason = check_sequence_method(config.method.name)
    if reason is not None:
        raise ConfigError(reason)
    augment = config.data.augment
    if augment.crop_padding or augment.flip or augment.mean is not None or config.train.channels_last:
        raise ConfigError(
            "data.augment and train.channels_last are for images; remove them from a text corpus's config"
        )


def _known(name: str, names: list[str], what: str, lookup: Callable[[str], type]) -> type:
    if name not in names:
        guess = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        raise ConfigError(f"unknown {what} {name!r}; {hint}available: {', '.join(names)}")
    return lookup(name)


def _check_options(
    what: str, cls: type, accepted: dict[str, Any], given: dict[str, Any], prefix: str
) -> None:
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        listed = ", ".join(
            f"{k}={_as_yaml(v)}" if v is not inspect.Parameter.empty else k for k, v in accepted.items()
        )
        # A misspelt key may belong to another section (epochs=3 means train.epochs=3).
        candidates = [prefix + name for name in accepted] + config_keys()
        guess = difflib.get_close_matches(prefix + unknown[0], candidates, n=1) or difflib.get_close_matches(
            unknown[0], candidates, n=1
        )
        hint = f"; did you mean {guess[0]}?" if guess else ""
        raise ConfigError(f"{what} has no option(s) {', '.join(unknown)}{hint} (its options: {listed})")
    hints = typing.get_type_hints(cls.__init__)
    for name, value in given.items():
        if name not in hints:
            continue
        try:
            adapter = TypeAdapter(hints[name], config=ConfigDict(arbitrary_types_allowed=True))
            adapter.validate_python(value)
        except ValidationError as error:
            default = accepted[name]
            example = f"; e.g. {prefix}{name}={_as_yaml(default)}"
            if default is inspect.Parameter.empty:
                example = ""
            raise ConfigError(
                f"{what} option {prefix}{name}={_as_yaml(value)} is not {_type_name(hints[name])} "
                f"({error.errors()[0]['msg'].lower()}){example}"
            ) from None


def _as_yaml(value: Any) -> str:
    """A value as it is written on the command line (``[500, 500]``, ``null``, ``true``)."""
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _type_name(hint: Any) -> str:
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) in (list, tuple, collections.abc.Sequence):
        return "a list such as [1, 2]"
    parts = [a for a in typing.get_args(hint) if a is not type(None)]
    if parts and len(parts) < len(typing.get_args(hint)):
        return " or ".join(_type_name(p) for p in parts) + " or null"
    return f"of type {getattr(hint, '__name__', str(hint))}"
