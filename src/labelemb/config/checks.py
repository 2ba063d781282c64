"""A config from a file or a mapping, checked against the registries before any work: names, keys, types."""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from .. import data, methods, models, tasks
from ..data.corruptions.suites import conditions
from ..data.registry import dataset_key, dataset_yields
from ..options import Options, OptionsError, read_options
from ..registry import unknown_name_message, unknown_options_message
from ..tasks.registry import data_kind
from .defaults import with_backbone_defaults
from .reading import read_config_file, validate_config
from .schema import ConfigError, RunConfig, config_keys, top_level_keys

#: Method options the trainer fills in from the run when the config leaves them out.
RUN_CONTEXT_OPTIONS = (
    "init_std",
    "num_examples",
    "epochs",
    "total_updates",
    "class_names",
    "noise_rate",
    "noise_transition",
    "tag_sets",
)


def build_config(raw: dict[str, Any], overrides: list[str] | None = None) -> RunConfig:
    """Validate a raw mapping (plus overrides) into a :class:`RunConfig` whose names and options
    all exist (:func:`check_buildable`): every mistake is found here, before any work."""
    config = validate_config(raw, overrides)
    check_buildable(config)
    return with_backbone_defaults(config)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply overrides."""
    config = build_config(read_config_file(path) if path is not None else {}, overrides)
    if path is None:
        return config
    return config.model_copy(update={"source_folder": str(Path(path).resolve().parent)})


def method_overrides(overrides: Sequence[str], names: Sequence[str]) -> list[str]:
    """The ``key=value`` overrides of a command that runs several methods (``compare``, ``tune``),
    with each bare method option applied to the methods among ``names`` that take it
    (:func:`option_targets`)."""
    keys = config_keys()
    result = []
    for text in overrides:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            result.append(text)  # what apply_overrides refuses in its own words
            continue
        result += [f"{target}={value}" for target in option_targets(key, value, names, keys)]
    return result


def option_targets(
    key: str, value: Any, names: Sequence[str], keys: Sequence[str] | None = None
) -> list[str]:
    """The config keys that ``key`` sets in a command that runs the methods ``names``.

    As for ``tune --space``: a dotted key and a top-level one (``seed``, ``experiment``) are the
    config's, as for one method; any other bare key is an option of the methods that have it
    (``beta`` sets bootstrap's ``methods.bootstrap.beta`` and leaves onehot alone; an option of
    every method stays ``beta``, the method section). Refused, one :class:`ConfigError` line each
    (``value`` is only shown there): a bare key none of the methods takes (did-you-mean, over
    their options and the config's keys), and an ambiguous one, an option of one of the methods
    that is also the last part of a dotted config key (lwr's ``epochs``, and ``train.epochs``): a
    run of a method without it would silently lack what the user may have meant for every run, so
    the dotted key must say which.
    """
    if "." in key or key in top_level_keys():
        return [key]
    names = list(dict.fromkeys(names))
    keys = list(config_keys() if keys is None else keys)
    value = value if isinstance(value, str) else _as_yaml(value)
    takers = [name for name in names if key in methods.options(name)]
    dotted = [k for k in keys if k.endswith(f".{key}")]
    if takers and dotted:
        raise ConfigError(
            f"{key}={value} is ambiguous: {key!r} is an option of {', '.join(takers)} and the last part "
            f"of the config key {dotted[0]!r}; write {dotted[0]}={value} for the config, or "
            f"methods.{takers[0]}.{key}={value} for the method"
        )
    if not takers:
        raise ConfigError(no_method_takes(key, names, keys))
    if takers == names:
        # Every method's: the method section, where the command line overrides the config file.
        return [key]
    return [f"methods.{name}.{key}" for name in takers]


def no_method_takes(key: str, names: Sequence[str], keys: Sequence[str] | None = None) -> str:
    """Why no method among ``names`` takes the bare key ``key``, with the closest option or config key."""
    keys = list(config_keys() if keys is None else keys)
    every = sorted({option for name in names for option in methods.options(name)})
    guess = difflib.get_close_matches(key, every, n=1)
    by_name: dict[str, str] = {}
    for dotted_key in keys:
        by_name.setdefault(dotted_key.rpartition(".")[2], dotted_key)
    near = difflib.get_close_matches(key, list(by_name), n=1)
    if guess:
        hint = f"did you mean {guess[0]!r}?"
    elif near:
        hint = f"did you mean the config key {by_name[near[0]]!r}?"
    else:
        hint = f"their options are: {', '.join(every) or 'none'}"
    if len(names) == 1:
        return f"method {names[0]!r} has no option {key!r}; {hint}"
    return f"none of the methods {', '.join(names)} has an option {key!r}; {hint}"


def check_buildable(config: RunConfig) -> None:
    """Raise :class:`ConfigError` unless the config's data set, model and method exist, fit each
    other and every option given to them is one they take, of a type they accept; checked before
    any data is read (a fraction of a millisecond: a config is checked where it is read,
    :func:`build_config`, and where its run is resolved, :func:`~labelemb.assembly.plan.resolve`,
    with no record of having been checked)."""
    model_class = _known(config.model.name, models.available(), "model", models.model_class)
    accepted_by_model = models.model_options(config.model.name)
    _check_options(
        f"model {config.model.name!r}", model_class, accepted_by_model, config.options("model"), "model."
    )
    check_option_sections(model_class, config.options("model"), "model.")
    if getattr(model_class, "fitted_on_texts", False) and not config.model.freeze:
        raise ConfigError(
            f"model {config.model.name!r} is fitted to the training texts and computed once: "
            "set model.freeze: true"
        )
    sparse = getattr(model_class, "sparse_gradients", None)
    if sparse is not None and sparse(config.options("model")) and config.train.clip_grad_norm is not None:
        raise ConfigError(
            f"model {config.model.name!r} trains a table whose gradients are sparse, which "
            "train.clip_grad_norm cannot clip: leave train.clip_grad_norm unset (or use projection: svd)"
        )
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


def check_option_sections(cls: type, given: dict[str, Any], prefix: str) -> None:
    """The options a class declares as sections of their own (``option_sections``: option ->
    an :class:`~labelemb.options.Options` schema's section name), each checked against its schema
    with the did-you-mean of every other key."""
    for name, section in getattr(cls, "option_sections", {}).items():
        if given.get(name) is None:
            continue
        schema = _options_schema(section)
        try:
            read_options(schema, given[name], prefix + name).check()
        except OptionsError as error:
            raise ConfigError(str(error)) from None


def _options_schema(section: str) -> type[Options]:
    """The :class:`~labelemb.options.Options` schema of section name ``section``."""
    found, waiting = None, list(Options.__subclasses__())
    while waiting and found is None:
        schema = waiting.pop()
        waiting += schema.__subclasses__()
        found = schema if schema.section == section else None
    if found is None:
        raise ConfigError(f"no option schema has the section {section!r}")
    return found


def check_noise(config: RunConfig, yields: str) -> None:
    """Noise on the training labels needs labels that are classes: not a sequence corpus's targets."""
    noise = config.noise
    if noise is None:
        return
    if yields == "token_pairs":
        raise ConfigError(
            f"noise: makes class labels wrong; data {config.data.name!r} is {data_kind(yields)}, whose "
            "targets are sequences: drop the noise section"
        )
    carried = getattr(config.data_sections().get("files"), "clean_label_column", None)
    if carried:
        raise ConfigError(
            f"noise: would make labels wrong that data.files.clean_label_column ({carried!r}) says are "
            "noisy already: drop the noise section (or data.files.clean_label_column to add noise to "
            "labels taken as right)"
        )
    if noise.kind == "instance" and yields != "images":
        raise ConfigError(
            f"noise kind instance reads each example's input as a vector of numbers; data "
            f"{config.data.name!r} is {data_kind(yields)}: use symmetric, pairflip, matrix or a labels file"
        )


def check_data_fits_model(config: RunConfig) -> None:
    """The data set exists, the backbone reads what it yields, and its task can train the method."""
    name = config.data.name
    _known(dataset_key(name), data.DATASETS.names(), "data set (data.name)", data.DATASETS.get)
    check_sections(config)
    yields = dataset_yields(name, config.data_sections())
    reads = models.model_inputs(config.model.name)
    inputs = tasks.input_kind(yields)
    if reads != inputs:
        readers = [m for m in models.available() if models.model_inputs(m) == inputs]
        holders = [d for d in data.DATASETS.names() if dataset_yields(d) == reads]
        raise ConfigError(
            f"data {name!r} is {data_kind(yields)}: it needs model.name="
            f"{' or '.join(readers)}, not {config.model.name!r} (which needs {data_kind(reads)}: "
            f"{', '.join(holders)})"
        )
    task = tasks.task_class(yields)
    reason = task.method_problem(config.method.name)
    if reason is not None:
        raise ConfigError(reason)
    selectable = task.selectable
    if config.selection_metric is not None and config.selection_metric not in selectable:
        offered = "null (it selects by its own dev score)"
        if selectable:
            offered = f"one of {', '.join(selectable)}, or null"
        raise ConfigError(
            f"selection_metric {config.selection_metric!r} cannot select the checks of "
            f"{data_kind(yields)}: use {offered}"
        )
    check_ood_sets(config, yields)
    check_shift(config, yields)
    check_noise(config, yields)
    augment = config.data.augment
    if config.model.freeze:
        check_freezable(config, yields)
    images = yields == "images"
    if not images and (
        augment.crop_padding or augment.flip or augment.mean is not None or config.train.channels_last
    ):
        raise ConfigError(
            f"data.augment and train.channels_last are for images; remove them from the config of {name!r}"
        )


def check_ood_sets(config: RunConfig, yields: str) -> None:
    """The ``ood`` sets judge a classifier, and each set named by data set is one that exists and
    holds images, as the run's data must (a text run names its OOD texts by file)."""
    if config.ood and yields not in ("images", "texts"):
        raise ConfigError(f"ood sets judge a classifier; {data_kind(yields)} has no class scores: remove ood")
    for entry in config.ood:
        if entry.data is None:
            continue
        known = data.DATASETS.names()
        _known(dataset_key(entry.data), known, "data set (an ood set's data)", data.DATASETS.get)
        if yields != "images" or dataset_yields(entry.data) != "images":
            raise ConfigError(
                f"ood set {entry.label!r}: a data set by name serves image runs of image data; give "
                f"{data_kind(yields)}'s out-of-distribution inputs as a file (ood: [{{path: FILE}}])"
            )


def check_shift(config: RunConfig, yields: str) -> None:
    """The ``shift`` entries name suites or corruptions of what the run reads, at severities they have."""
    if not config.shift:
        return
    if yields not in ("images", "texts"):
        raise ConfigError(f"shift scores a classifier; {data_kind(yields)} has no class scores: remove shift")

    try:
        conditions(config.shift, yields)
    except ValueError as error:
        raise ConfigError(f"shift: {error}") from None


def check_freezable(config: RunConfig, yields: str) -> None:
    """``model.freeze`` trains a head on features computed once: one label per example, and no
    per-batch change of the inputs (random crops and flips would need the backbone every step)."""
    if yields not in ("images", "texts", "tagged texts"):
        raise ConfigError(
            f"model.freeze trains a classifier on fixed features: it serves images and texts, not "
            f"{data_kind(yields)}; set model.freeze: false"
        )
    augment = config.data.augment
    if augment.crop_padding or augment.flip:
        raise ConfigError(
            "data.augment's random crops and flips change the images every epoch, but model.freeze "
            "computes their features once: remove crop_padding / flip, or set model.freeze: false"
        )
    if config.train.compile or config.train.channels_last:
        raise ConfigError(
            "train.compile and train.channels_last speed up a backbone; a frozen one does not train"
        )


def check_sections(config: RunConfig) -> None:
    """The data set's option sections fit together (:meth:`~labelemb.options.Options.check`), and
    no section that only another data set reads is given (with a value of its own)."""
    name = config.data.name
    mine = config.data_sections()
    for options in mine.values():
        try:
            options.check()
        except OptionsError as error:
            raise ConfigError(str(error)) from None
    for section, options in config.data.sections().items():
        given = options.model_dump(exclude_defaults=True)
        if section in mine or not given:
            continue
        owners = [
            entry.name
            for entry in data.DATASETS.entries()
            if any(schema.section == section for schema in entry.info["options"])
        ]
        what = (
            "describes your own files" if owners == ["files"] else f"holds options of {' or '.join(owners)}"
        )
        raise ConfigError(
            f"data.{section} ({', '.join(sorted(given))}) {what}: set data.name: {owners[0]} "
            f"to read them, or remove data.{section} to train on {name!r}"
        )


def _known(name: str, names: list[str], what: str, lookup: Callable[[str], Any]) -> Any:
    if name not in names:
        raise ConfigError(unknown_name_message(what, name, names))
    return lookup(name)


def _check_options(
    what: str, cls: type, accepted: dict[str, Any], given: dict[str, Any], prefix: str
) -> None:
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        # A misspelt key may belong to another section (epochs=3 means train.epochs=3).
        candidates = [prefix + name for name in accepted] + config_keys()
        raise ConfigError(unknown_options_message(what, unknown, option_list(accepted), candidates, prefix))
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


def option_list(accepted: dict[str, Any]) -> list[str]:
    """Options as a refusal lists them: ``tau=2.0`` with its default, a required one bare."""
    return [f"{k}={_as_yaml(v)}" if v is not inspect.Parameter.empty else k for k, v in accepted.items()]


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
