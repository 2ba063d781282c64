"""What a call runs: its config (a file, a mapping, or the embedded demo setting) with the
overrides its keywords and options ask for, the same for the Python API and the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..arguments import parse_names, parse_seeds
from ..config import RunConfig, build_config, load_config, method_overrides
from ..demo_config import DEMO_CONFIG

#: What a config may be given as: a YAML file's path, a mapping of its sections, or None for the
#: demo's own setting (:data:`DEMO_CONFIG`).
ConfigSource = str | Path | Mapping[str, Any] | None


def base_config(config: ConfigSource, overrides: Sequence[str]) -> RunConfig:
    """The config of ``train``, ``compare`` and ``tune``: the file at ``config`` (or the mapping)
    with ``overrides``, or without one the demo's own setting (:data:`DEMO_CONFIG`); relative file
    names of a mapping or the demo are read from the working folder; on another data set than the
    demo's, the demo's OOD set is dropped unless the overrides name one."""
    overrides = list(overrides)
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    setting = dict(config) if config is not None else dict(DEMO_CONFIG)
    names = [o.partition("=")[2] for o in overrides if o.startswith("data.name=")]
    if config is None and names and names[-1] != DEMO_CONFIG["data"]["name"]:
        if not any(o.startswith("ood") for o in overrides):
            # The photo patches are the digits' out-of-distribution set, no other data set's:
            # dropped before the config is checked, which would refuse them beside other data.
            del setting["ood"]
    # Relative file names are the user's, as typed in this folder.
    return build_config(setting, overrides).model_copy(update={"source_folder": str(Path.cwd())})


def keyword_overrides(options: Mapping[str, Any]) -> list[str]:
    """Keyword arguments as ``key=value`` overrides: a mapping is a section (``train={"epochs": 3}``
    is ``train.epochs=3``), anything else a top-level key or, bare, a method option (``tau=4``).
    Values are written as JSON, which the override reader reads as YAML does."""
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
    """The key=value overrides plus what the shared options of train, compare and tune ask for.

    With ``methods``, a bare method option goes to the methods that take it
    (:func:`~labelemb.config.method_overrides`)."""
    overrides = list(overrides)
    if methods:
        # The base config is checked as one of the methods that run, not the file's own method,
        # which may lack an option meant for them.
        overrides = [f"method.name={methods[0]}", *method_overrides(overrides, list(methods))]
    if method:
        overrides.append(f"method.name={method}")
    if data_dir:
        overrides.append(f"data.dir={data_dir}")
    if output_dir:
        overrides.append(f"output_dir={output_dir}")
    if device:
        overrides.append(f"train.device={device}")
    if not progress:
        overrides.append("train.progress=false")
    if log_to:
        overrides.append(f"train.log_to=[{','.join(log_to)}]")
    return overrides


#: Seeds as the calls take them: a list, one seed, or one text as the command line takes it.
Seeds = Sequence[int] | int | str


def seed_numbers(seeds: Seeds) -> list[int]:
    """The seeds to run: a list, one seed, or one text as the command line takes it (``"0-4"``,
    ``"0,2,5"``: :func:`~labelemb.arguments.parse_seeds`, whose one line a ValueError carries)."""
    if isinstance(seeds, str):
        try:
            return parse_seeds(seeds)
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None
    return [seeds] if isinstance(seeds, int) else list(seeds)


def method_names(methods: str | Sequence[str]) -> list[str]:
    """The methods to run: a list, or one text as the command line takes it
    (``"onehot, label_embedding"``: :func:`~labelemb.arguments.parse_names`)."""
    return parse_names(methods) if isinstance(methods, str) else list(methods)
