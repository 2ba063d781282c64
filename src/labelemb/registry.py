"""One kind of door for every kind of thing: methods, backbones, data sets and tasks.

Each kind has a :class:`Registry`. A definition registers itself with a decorator next to it
(``@models.register("mlp")`` above the class), so a new one is one new file and no list to edit;
``names()`` answers "what is there" (the CLI's help) and a name that is not there gets a
did-you-mean.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import operator
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def unknown_name_message(kind: str, name: str, names: Iterable[str]) -> str:
    """``unknown model 'mpl'; did you mean 'mlp'? available: cnn, mlp, ...``."""
    names = list(names)
    guess = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    return f"unknown {kind} {name!r}; {hint}available: {', '.join(names)}"


def unknown_options_message(
    what: str, unknown: list[str], listed: list[str], candidates: list[str], prefix: str = ""
) -> str:
    """``method 'onehot' has no option(s) tua; did you mean tau? (its options: ...)``: ``listed``
    as the options are written (``tau=2.0``, a required one bare), ``candidates`` the guesses (the
    options with their ``prefix``, and every config key: ``epochs=3`` means ``train.epochs=3``)."""
    guess = difflib.get_close_matches(prefix + unknown[0], candidates, n=1) or difflib.get_close_matches(
        unknown[0], candidates, n=1
    )
    hint = f"; did you mean {guess[0]}?" if guess else ""
    return f"{what} has no option(s) {', '.join(unknown)}{hint} (its options: {', '.join(listed)})"


def unknown_key_message(where: str, every: list[str]) -> str:
    """``config key 'trian.epochs' does not exist; did you mean 'train.epochs'?``, among the config's
    keys ``every``."""
    section = where.rpartition(".")[0]
    siblings = [k for k in every if k.rpartition(".")[0] == section]
    # A misspelt section (data.fils) is matched against the sections' own keys (data.files.format).
    sections = sorted({k.rpartition(".")[0] for k in every} - {section, ""})
    guess = difflib.get_close_matches(where, siblings + sections, n=1) or difflib.get_close_matches(
        where, every, n=1
    )
    hint = f"; did you mean {guess[0]!r}?" if guess else f"; valid keys: {', '.join(siblings)}"
    return f"config key {where!r} does not exist{hint}"


#: The bounds a config key's range may have, as pydantic's ``Field`` names them.
_BOUNDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def out_of_range_message(key: str, value: Any, limits: dict[str, Any]) -> str | None:
    """``noise.rate 1.5: the share of training labels made wrong, a number in [0, 1)`` where the
    number ``value`` lies outside the range of ``limits`` (what the key is, ``what``; ``kind``, "a
    number" or "a whole number"; its bounds ``ge``, ``gt``, ``le``, ``lt``), else None."""
    bounds = {name: bound for name, bound in limits.items() if name in _BOUNDS}
    if all(_BOUNDS[name](value, bound) for name, bound in bounds.items()):
        return None
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else None
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else None
    if low and high:
        where = f"in {low}, {high}"
    else:  # one side: >= 1, < 1
        signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        where = " and ".join(f"{signs[name]} {bound}" for name, bound in bounds.items())
    return f"{key} {value}: {limits['what']}, {limits['kind']} {where}"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered thing under its name, and what its decorator said of it (``info``)."""

    name: str
    thing: T
    info: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Names -> things of one kind (classes or builder functions), filled by :meth:`register`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator: make ``thing`` known as ``name``; ``info`` is kept beside it (what it yields,
        a preset's options). Registering another thing under a taken name is an error."""

        def decorate(thing: T) -> T:
            entry = Entry(name, thing, dict(info))
            if name in self._entries and self._entries[name] != entry:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._entries[name] = entry
            return thing

        return decorate

    def names(self, *, sort: bool = True) -> list[str]:
        """Every registered name, sorted (or in the order they were registered)."""
        return sorted(self._entries) if sort else list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name``; a ValueError with a did-you-mean if there is none."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(unknown_name_message(self.kind, name, self.names())) from None

    def get(self, name: str) -> T:
        """The thing registered as ``name``."""
        return self.entry(name).thing

    def entries(self) -> list[Entry[T]]:
        return [self._entries[name] for name in self.names()]


def keyword_options(
    function: Callable[..., Any], skip: Iterable[str] = (), *, keyword_only: bool = False
) -> dict[str, Any]:
    """The options a constructor or builder takes by keyword (only keyword-only ones with
    ``keyword_only``), with their defaults (``inspect.Parameter.empty``: required), leaving out
    ``skip`` (what it gets from the data)."""
    skipped = {"self", *skip}
    kinds = (inspect.Parameter.KEYWORD_ONLY,)
    if not keyword_only:
        kinds += (inspect.Parameter.POSITIONAL_OR_KEYWORD,)
    return {
        p.name: p.default
        for p in inspect.signature(function).parameters.values()
        if p.name not in skipped and p.kind in kinds
    }


def check_options(what: str, accepted: dict[str, Any], given: Iterable[str]) -> None:
    """A ValueError naming the options of ``given`` that ``what`` does not take, and those it takes."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        listed = ", ".join(
            f"{k}={v!r}" if v is not inspect.Parameter.empty else k for k, v in accepted.items()
        )
        raise ValueError(f"{what} has no option(s) {', '.join(unknown)}; its options are: {listed}")


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``) and of its subpackages, at any depth, so
    that each registers what it defines."""
    for module in pkgutil.walk_packages(path, prefix=f"{package}."):
        importlib.import_module(module.name)
