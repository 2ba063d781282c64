"""A config as written, read into a :class:`~labelemb.config.RunConfig`: the YAML file, its
``key=value`` overrides, and pydantic's complaints as one line each."""

from __future__ import annotations

import copy
import functools
import re
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..registry import out_of_range_message
from ..rundir import yaml_problem
from .schema import ConfigError, RunConfig, top_level_keys, unknown_key

_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as YAML, so ``3``, ``1e-3``, ``[1, 2]`` and ``null`` work."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.epochs=3)")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(raw.strip()):
        value = float(raw)  # YAML 1.1 reads 1e-3 (no dot) as a string
    return key.strip(), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key=value`` applied (:func:`with_settings`)."""
    return with_settings(raw, [parse_override(text) for text in overrides])


def with_settings(raw: dict[str, Any], settings: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each (key, value) set, in order, the value as it is given.

    Dotted keys address a section (``train.epochs``); a bare key is a top-level field
    (``seed``) or, otherwise, an option of the method (``tau``, ``embedding``).
    """
    result = copy.deepcopy(raw)
    for key, value in settings:
        parts = key.split(".")
        if len(parts) == 1 and key not in top_level_keys():
            parts = ["method", key]
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key {key!r}: {part!r} is not a section")
        node[parts[-1]] = copy.deepcopy(value)
    return result


#: pydantic's errors of a number outside its field's bounds.
_OUT_OF_RANGE = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


@functools.lru_cache(maxsize=1)
def described_ranges(model: type[BaseModel] = RunConfig, prefix: str = "") -> dict[str, dict[str, Any]]:
    """The config keys whose field says what it is (``description``) and bounds its number: key ->
    ``{"what", "kind", "ge" / "gt" / "le" / "lt"}``, as :func:`~labelemb.registry.out_of_range_message`
    reads them (the full checks, and the command line's index before torch is imported)."""
    found: dict[str, dict[str, Any]] = {}
    for name, field in model.model_fields.items():
        # A plain class of the annotation (list[int] is no class, though Python 3.10 says it is).
        kinds = [
            a
            for a in (*typing.get_args(field.annotation), field.annotation)
            if isinstance(a, type) and typing.get_origin(a) is None
        ]
        section = next((a for a in kinds if issubclass(a, BaseModel)), None)
        if section is not None:
            found.update(described_ranges(section, f"{prefix}{name}."))
            continue
        bounds = {
            bound: getattr(meta, bound)
            for meta in field.metadata
            for bound in ("ge", "gt", "le", "lt")
            if getattr(meta, bound, None) is not None
        }
        if field.description and bounds:
            kind = "a whole number" if int in kinds and float not in kinds else "a number"
            found[prefix + name] = {"what": field.description, "kind": kind, **bounds}
    return found


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        if item["type"] == "labelemb_config":
            lines.append(item["msg"])
        elif item["type"] == "extra_forbidden":
            lines.append(unknown_key(where))
        elif item["type"] in _OUT_OF_RANGE and where in described_ranges():
            lines.append(out_of_range_message(where, item["input"], described_ranges()[where]) or item["msg"])
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"config key {where!r}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], overrides: list[str] | None = None) -> RunConfig:
    """A raw mapping (plus overrides) as a :class:`RunConfig`: keys and types only. What the names
    in it refer to (methods, models, data sets and their options) is checked by
    :func:`~labelemb.config.build_config`, which knows the registries."""
    merged = apply_overrides(raw or {}, overrides or [])
    # A field left out of every dump (the config file's folder) is no key a file may set.
    not_keys = [key for key in merged if key in RunConfig.model_fields and key not in top_level_keys()]
    if not_keys:
        raise ConfigError("\n".join(unknown_key(key) for key in not_keys))
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; a :class:`ConfigError` saying what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"config file {path} does not exist (the configs/ folder of the repository has examples)"
        )
    if not path.is_file():
        raise ConfigError(
            f"--config {path} is a folder, not a YAML file; give a file such as configs/mnist-mlp.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML ({yaml_problem(error)})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"cannot read config file {path} ({error}); give a readable UTF-8 YAML file"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(raw).__name__}")
    return raw
