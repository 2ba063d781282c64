"""What a call runs: its config (a file, a mapping, a :class:`~labelemb.config.RunConfig` or the
embedded demo setting) with the settings its keywords and options ask for, the same for the Python
API and the command line. Settings are a mapping of dotted config keys to values, set on the config
as they are given (:func:`typed_config`); the command line's ``key=value`` texts are read into such
a mapping in one place, :func:`override_settings`."""

from __future__ import annotations

import argparse
import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from ..arguments import parse_names, parse_seeds
from ..config import (
    RunConfig,
    build_config,
    config_keys,
    method_overrides,
    option_targets,
    parse_override,
    read_config_file,
    with_settings,
)
from ..demo_config import DEMO_CONFIG

#: What a config may be given as: a YAML file's path, a mapping of its sections, the typed config
#: itself, or None for the demo's own setting (:data:`DEMO_CONFIG`).
ConfigSource = str | Path | Mapping[str, Any] | RunConfig | None

#: Settings: dotted config keys (``train.epochs``; a bare key is a top-level key or a method
#: option) to their values, each set as it is given (a mapping value is a whole section).
Settings = Mapping[str, Any]


def typed_config(config: ConfigSource, settings: Settings | None = None) -> RunConfig:
    """The config of ``train`` and ``compare``: the file at ``config``, the mapping, the
    :class:`RunConfig`, or without one the demo's own setting (:data:`DEMO_CONFIG`), with each of
    ``settings`` set as it is given and the whole checked as a file's config is. Relative file names
    are read beside the file, or for the others from the working folder (a RunConfig's own
    ``source_folder`` where it has one); on another data set than the demo's, the demo's OOD set is
    dropped unless the settings name one."""
    settings = plain_settings(settings or {})
    folder = str(Path.cwd())  # relative file names are the user's, as typed in this folder
    if isinstance(config, RunConfig):
        # What the config was given, not its defaults: a backbone's own learning rate stays its own.
        raw = config.model_dump(mode="json", exclude_unset=True)
        folder = config.source_folder or folder
    elif isinstance(config, (str, PurePath)):
        raw, folder = read_config_file(config), str(Path(config).resolve().parent)
    elif config is not None:
        raw = dict(config)
    else:
        raw = dict(DEMO_CONFIG)
        section = settings.get("data")
        # A section mapping (data={"name": ...}) names the data set as the dotted key does.
        named = section.get("name") if isinstance(section, Mapping) else None
        name = settings.get("data.name", named or DEMO_CONFIG["data"]["name"])
        if name != DEMO_CONFIG["data"]["name"] and not any(key.startswith("ood") for key in settings):
            # The photo patches are the digits' out-of-distribution set, no other data set's:
            # dropped before the config is checked, which would refuse them beside other data.
            del raw["ood"]
    built = build_config(with_settings(raw, settings.items()))
    return built.model_copy(update={"source_folder": folder})


def base_config(config: ConfigSource, overrides: Sequence[str]) -> RunConfig:
    """:func:`typed_config` with the command line's ``key=value`` texts (``label-issues`` still
    hands its over as texts)."""
    return typed_config(config, override_settings(overrides))


def override_settings(overrides: Iterable[str]) -> dict[str, Any]:
    """The command line's ``key=value`` texts as settings, each value read as YAML
    (:func:`~labelemb.config.parse_override`): the one place the texts are read. A key given twice
    takes its last value, set where it last came (so ``train={...}`` then ``train.epochs=3`` keeps
    the epochs)."""
    settings: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        put(settings, key, value)
    return settings


def plain_settings(settings: Settings) -> dict[str, Any]:
    """``settings`` with each value as plain config data (what a YAML file holds: a tuple is a list,
    a path its text); anything else is refused in one line, before anything is read."""
    plain: dict[str, Any] = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"setting {key!r}: a config key is a non-empty text such as 'train.epochs'")
        plain[key] = config_value(key, value)
    return plain


def flat_settings(options: Settings, prefix: str = "") -> dict[str, Any]:
    """Keywords as settings: a nested mapping is the dotted keys of its section
    (``train={"epochs": 3}`` is ``{"train.epochs": 3}``: the rest of the section stays as the config
    has it), anything else a key of its own (:func:`plain_settings`)."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):  # an empty one sets nothing
            for inner, inner_value in flat_settings(value, f"{prefix}{key}.").items():
                put(flat, inner, inner_value)
        else:
            put(flat, prefix + key, value)
    return plain_settings(flat)


def config_value(key: str, value: Any) -> Any:
    """``value`` as plain config data (what a YAML file holds), or a ValueError naming the key."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): config_value(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_value(key, item) for item in value]
    if hasattr(value, "item") and callable(value.item):  # a NumPy or torch scalar
        return config_value(key, value.item())
    raise ValueError(
        f"setting {key}: its value, of type {type(value).__name__}, is not config data; give a "
        "number, text, true/false, None, a list or a mapping"
    )


def put(settings: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` last in ``settings``: settings are applied in order, as texts were."""
    settings.pop(key, None)
    settings[key] = value


def method_settings(settings: Settings, methods: Sequence[str]) -> dict[str, Any]:
    """The settings of a command that runs several ``methods`` (``compare``): the config is
    checked as the first of them, and each bare method option goes to the methods that take it
    (:func:`~labelemb.config.option_targets`: ``beta`` is ``methods.bootstrap.beta`` beside onehot)."""
    routed: dict[str, Any] = {"method.name": methods[0]}
    keys = config_keys()
    for key, value in plain_settings(settings).items():
        for target in option_targets(key, value, methods, keys):
            put(routed, target, value)
    return routed


def run_settings(
    *,
    method: str | None = None,
    data_dir: str | None = None,
    output_dir: str | None = None,
    device: str | None = None,
    progress: bool = True,
    log_to: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The settings the shared options of train, compare and tune ask for (``--data-dir``...),
    only those given."""
    given = {
        "method.name": method,
        "data.dir": data_dir,
        "output_dir": output_dir,
        "train.device": device,
        "train.progress": None if progress else False,
        "train.log_to": list(log_to) if log_to else None,
    }
    return {key: value for key, value in given.items() if value is not None}


def keyword_overrides(options: Mapping[str, Any]) -> list[str]:
    """Keyword arguments as ``key=value`` overrides, for the call that still takes texts
    (``find_label_issues``; the others set them as they are, :func:`flat_settings`):
    a mapping is a section (``train={"epochs": 3}`` is ``train.epochs=3``), anything else a
    top-level key or, bare, a method option (``tau=4``). Values are written as JSON, which the
    override reader reads as YAML does."""
    overrides = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            overrides += [f"{key}.{inner}" for inner in keyword_overrides(value)]
        else:
            overrides.append(f"{key}={json.dumps(value)}")
    return overrides


def run_overrides(
    overrides: Sequence[str],
    *,
    methods: Sequence[str] | None = None,
    method: str | None = None,
    data_dir: str | None = None,
    output_dir: str | None = None,
    device: str | None = None,
    progress: bool = True,
    log_to: Sequence[str] | None = None,
) -> list[str]:
    """The key=value overrides plus what the shared options of label-issues ask for
    (:func:`run_settings` is the same for train, compare and tune, as settings).

    With ``methods``, a bare method option goes to the methods that take it
    (:func:`~labelemb.config.method_overrides`)."""
    overrides = list(overrides)
    if methods:
        # The base config is checked as one of the methods that run, not the file's own method,
        # which may lack an option meant for them.
        overrides = [f"method.name={methods[0]}", *method_overrides(overrides, list(methods))]
    shared = run_settings(
        method=method,
        data_dir=data_dir,
        output_dir=output_dir,
        device=device,
        progress=progress,
        log_to=log_to,
    )
    # JSON, which the override reader reads as YAML does (a path stays one text).
    return [*overrides, *(f"{key}={json.dumps(value)}" for key, value in shared.items())]


#: Seeds as the calls take them: one seed, any iterable of seeds (a list, ``range(5)``), or one
#: text as the command line takes it (``"0-4"``).
Seeds = int | Iterable[int] | str


def seed_numbers(seeds: Seeds) -> list[int]:
    """The seeds to run, each a whole number: one seed, an iterable of them (``range(5)``), or one
    text as the command line takes it (``"0-4"``, ``"0,2,5"``:
    :func:`~labelemb.arguments.parse_seeds`, whose one line a ValueError carries)."""
    if isinstance(seeds, str):
        try:
            return parse_seeds(seeds)
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None
    many = seeds if isinstance(seeds, Iterable) else [seeds]
    numbers = []
    for seed in many:
        try:
            if isinstance(seed, bool):
                raise TypeError
            numbers.append(operator.index(seed))  # an int, or NumPy's; not 1.5, not "1"
        except TypeError:
            raise ValueError(
                f"seed {seed!r} is not a whole number: give seeds as 3, [0, 2, 5], range(5) or '0-4'"
            ) from None
    return numbers


def method_names(methods: str | Sequence[str]) -> list[str]:
    """The methods to run: a list, or one text as the command line takes it
    (``"onehot, label_embedding"``: :func:`~labelemb.arguments.parse_names`)."""
    return parse_names(methods) if isinstance(methods, str) else list(methods)
