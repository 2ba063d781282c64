"""The names and options the command line knows before it imports torch: a light index that the
registries keep, and the checks of a command line that read it.

``index.json`` beside this file holds what :func:`build_index` reads off the registries (methods and
their options, backbones, the config's keys, the ranges of the keys that say what they are
(``noise.rate``), tune's objectives, the conformal scores, the kinds of cache);
tests/cli/test_index.py holds that the two agree, and :func:`write_index` writes the file again
after a registry changes. :func:`check_command_line` gives the one-line refusals of the full checks
(:func:`labelemb.config.build_config`) for what the command line itself names, in their words, in a
fraction of a second; what it cannot tell (a config file's contents) is left to them.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from ..demo_config import DEMO_CONFIG
from ..registry import (
    out_of_range_message,
    unknown_key_message,
    unknown_name_message,
    unknown_options_message,
)

INDEX_FILE = Path(__file__).with_name("index.json")


@functools.lru_cache(maxsize=1)
def read_index() -> dict[str, Any]:
    """The index as ``index.json`` holds it."""
    return json.loads(INDEX_FILE.read_text(encoding="utf-8"))


def build_index() -> dict[str, Any]:
    """The index read off the registries (imports torch and every method: for the test and the
    writer only)."""
    # lazy (each below): the registries load torch and every method; the index's readers must not
    from .. import methods, models  # lazy: the index's writer only
    from ..config import (  # lazy: the index's writer only
        build_config,
        config_keys,
        described_ranges,
        option_list,
        top_level_keys,
    )
    from ..data.caches import KINDS  # lazy: the index's writer only
    from ..label_issues import FILTERS, RANKINGS  # lazy: the index's writer only
    from ..metrics.conformal import METHODS  # lazy: the index's writer only
    from ..predict.sets import SET_METHOD  # lazy: the index's writer only
    from ..tuning import OBJECTIVES  # lazy: the index's writer only

    return {
        "methods": {name: option_list(methods.options(name)) for name in methods.available()},
        "default_method": build_config(DEMO_CONFIG).method.name,
        "models": models.available(),
        "config_keys": config_keys(),
        "top_level_keys": top_level_keys(),
        "objectives": list(OBJECTIVES),
        "set_methods": list(METHODS),
        "set_method": SET_METHOD,
        "cache_kinds": list(KINDS),
        "ranges": described_ranges(),
        "label_issue_detectors": list(RANKINGS),
        "label_issue_filters": list(FILTERS),
    }


#: The packages whose registries an extension adds to (a method, backbone, data set or task of
#: the user's, registered by importing its module before calling :func:`labelemb.cli.main`).
REGISTRIES = ("labelemb.methods", "labelemb.models", "labelemb.data", "labelemb.tasks")


def check_command_line(args: argparse.Namespace) -> None:
    """Refuse, with the full checks' own line (a ValueError), a method, backbone, method option or
    config key the command line names that does not exist. Where the registries are loaded already
    an extension may have added to them: the full checks, which ask them, decide (at no import cost)."""
    if not any(name in sys.modules for name in REGISTRIES):
        check_against_index(args, read_index())


def check_against_index(args: argparse.Namespace, index: dict[str, Any]) -> None:
    """:func:`check_command_line`'s refusals, by the names and options of ``index``."""
    known = list(index["methods"])
    chosen = getattr(args, "method", None)
    for name in [*(getattr(args, "methods", None) or []), *([chosen] if chosen else [])]:
        _known_method(name, known)
    method = chosen or (index["default_method"] if args.config is None else None)
    for text in args.overrides:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            continue  # the full checks say what an override must look like
        if key == "method.name":
            _known_method(value.strip(), known)
            method = chosen or value.strip()  # --method is applied after the overrides
        elif key == "model.name" and value.strip() not in index["models"]:
            raise ValueError(unknown_name_message("model", value.strip(), index["models"]))
        elif "." in key or key in index["top_level_keys"]:
            _known_key(key, index["config_keys"])
            _in_range(key, value.strip(), index["ranges"])
    if args.command == "train" and method in index["methods"]:
        _method_options(method, args.overrides, index)


def _known_method(name: str, known: list[str]) -> None:
    if name not in known:
        raise ValueError(unknown_name_message("method", name, known))


def _known_key(key: str, every: list[str]) -> None:
    """A dotted key whose section the config does not have; a key below an open section (a
    backbone's or a method's options, ``train.adam``) is left to the full checks."""
    parts = key.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if prefix in every:
            return
        if not any(k.startswith(prefix + ".") for k in every):
            raise ValueError(unknown_key_message(prefix, every))


def _in_range(key: str, value: str, ranges: dict[str, dict[str, Any]]) -> None:
    """A number out of a described key's range (``noise.rate=1.5``), refused in the full checks'
    words; what is not a plain number is left to them."""
    if key not in ranges:
        return
    for parse in (int, float):
        try:
            number = parse(value)
        except ValueError:
            continue
        problem = out_of_range_message(key, number, ranges[key])
        if problem:
            raise ValueError(problem)
        return


def _method_options(method: str, overrides: list[str], index: dict[str, Any]) -> None:
    """``train``'s bare keys are options of its one method: one it does not take is refused."""
    listed = index["methods"][method]
    accepted = [item.partition("=")[0] for item in listed]
    given = {text.partition("=")[0].strip() for text in overrides if "=" in text}
    bare = {key for key in given if key and "." not in key and key not in index["top_level_keys"]}
    unknown = sorted(bare - set(accepted))
    if unknown:
        candidates = accepted + index["config_keys"]
        raise ValueError(unknown_options_message(f"method {method!r}", unknown, listed, candidates))


def write_index() -> None:
    """``index.json`` written again from the registries (after one of them changed)."""
    INDEX_FILE.write_text(json.dumps(build_index(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {INDEX_FILE}")
