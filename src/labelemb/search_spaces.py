"""Search spaces for tuning: one searched value (:class:`Space`), its command-line form, and the checks.

A method declares the values worth searching beside its own code (``search_space``, a class
attribute of :class:`labelemb.methods.Method`); the command line adds shared keys in the form
:func:`parse_space` reads (``--space train.lr=1e-4:1e-2:log``). A trial draws each value through
Optuna (:meth:`Space.suggest`). Optuna is optional (``pip install "labelemb[tune]"``): it is
imported only inside the functions that need it (:func:`import_optuna`).

This module sits on the lowest floor: it imports nothing of labelemb's, so methods, the trainer
and the command line can all use it. What it needs to know of a method or of the config (its
options, the config's keys, a way to try a value) is handed to :func:`check_space`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: What a categorical choice may be (what Optuna stores).
Choice = bool | int | float | str | None

KINDS = ("float", "int", "categorical")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_INT = re.compile(r"[+-]?\d+")
INSTALL_HINT = 'tuning needs Optuna: pip install "labelemb[tune]"'


class SpaceError(ValueError):
    """A search space that cannot be searched; the message names the key and the fix, a line a problem."""


def import_optuna() -> Any:
    """The ``optuna`` module, or an ImportError that says how to install it."""
    try:
        import optuna  # lazy: the tune extra
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return optuna


@dataclass(frozen=True)
class Space:
    """One searched value: a float range, an int range (each uniform or ``log``), or categorical choices.

    Build one with :meth:`floats`, :meth:`ints` or :meth:`categorical` (or read the command-line
    form with :func:`parse_space`). A range has ``low < high`` (an empty range searches nothing:
    give the value as an override instead), a ``log`` range ``low > 0``; choices are at least two,
    all different. ``str(space)`` is the command-line form (``1e-05:0.01:log``, ``a|b``).
    """

    kind: Literal["float", "int", "categorical"]
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Choice, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "float":
            for name in ("low", "high"):
                value = getattr(self, name)
                if isinstance(value, int) and not isinstance(value, bool):
                    object.__setattr__(self, name, float(value))
        problem = _problem(self.kind, self.low, self.high, self.log, self.choices)
        if problem is not None:
            raise SpaceError(f"search space {self!s}: {problem}")

    @classmethod
    def floats(cls, low: float, high: float, *, log: bool = False) -> Space:
        """Floats in ``[low, high]``, drawn uniformly or, with ``log``, uniformly in ``log``."""
        return cls("float", low, high, log)

    @classmethod
    def ints(cls, low: int, high: int, *, log: bool = False) -> Space:
        """Whole numbers in ``[low, high]`` (both included), drawn uniformly or, with ``log``, in ``log``."""
        return cls("int", low, high, log)

    @classmethod
    def categorical(cls, *choices: Choice) -> Space:
        """One of ``choices``."""
        return cls("categorical", choices=tuple(choices))

    def suggest(self, trial: Any, name: str) -> Choice:
        """This value for an Optuna trial, under ``name`` (``trial.suggest_float``, ``suggest_int`` or
        ``suggest_categorical``)."""
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(name, list(self.choices))

    def bounds(self) -> tuple[Choice, ...]:
        """The values at the edges of the space, the ones a method is tried with: ``(low, high)``, or
        every choice."""
        return (self.low, self.high) if self.kind != "categorical" else self.choices

    def __contains__(self, value: object) -> bool:
        if self.kind == "categorical":
            return any(value == choice and type(value) is type(choice) for choice in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        return self.low <= value <= self.high

    def __str__(self) -> str:
        if self.kind == "categorical":
            return "|".join(_choice_text(choice) for choice in self.choices)
        return f"{self.low!r}:{self.high!r}" + (":log" if self.log else "")


def parse_space(text: str) -> tuple[str, Space]:
    """``key=low:high[:log]`` or ``key=a|b|c`` (``--space``'s argument) as ``(key, space)``.

    A range is of whole numbers when both bounds are written as whole numbers (``lwr`` ``k=1:5``),
    else of floats (``tau=1.0:8``, ``train.lr=1e-4:1e-2:log``). Choices are read as whole numbers,
    numbers, ``true``/``false``, ``none``, or else kept as words (``train.adam=fused|classic``).
    Every problem is a :class:`SpaceError` of one line naming the key and the fix.
    """
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not _KEY.fullmatch(key) or not spec:
        raise SpaceError(
            f"--space {text!r} is not of the form key=low:high[:log] or key=a|b|c; "
            "e.g. train.lr=1e-4:1e-2:log, tau=1:8, train.adam=fused|classic"
        )
    where = f"--space {key}={spec}"
    if "|" in spec:
        words = [word.strip() for word in spec.split("|")]
        if any(not word for word in words):
            raise SpaceError(f"{where}: an empty choice; list two or more, e.g. {key}=a|b")
        choices = tuple(_read_choice(word) for word in words)
        return key, _space(where, "categorical", None, None, False, choices)
    parts = [part.strip() for part in spec.split(":")]
    if len(parts) not in (2, 3):
        raise SpaceError(
            f"{where} is not of the form {key}=low:high[:log] or {key}=a|b|c; "
            f"e.g. {key}=1e-4:1e-2:log or {key}=0.1:0.9"
        )
    log = False
    if len(parts) == 3:
        if parts[2].lower() != "log":
            raise SpaceError(
                f"{where}: the third part says how to draw and can only be 'log', got {parts[2]!r}; "
                f"write {key}={parts[0]}:{parts[1]}:log, or leave it out for a uniform range"
            )
        log = True
    whole = all(_INT.fullmatch(part) for part in parts[:2])
    bounds = [_read_bound(where, key, part) for part in parts[:2]]
    if whole:
        return key, _space(where, "int", int(parts[0]), int(parts[1]), log, ())
    return key, _space(where, "float", bounds[0], bounds[1], log, ())


def combine(declared: Mapping[str, Space], given: Mapping[str, Space]) -> dict[str, Space]:
    """A method's declared space with the command line's keys; a key given there replaces the method's."""
    return {**declared, **given}


def check_space(
    method_name: str,
    spaces: Mapping[str, Space],
    config_keys: Iterable[str],
    method_options: Mapping[str, Any],
    *,
    fixed: Mapping[str, Any] | None = None,
    run_context: Iterable[str] = (),
    build: Callable[[dict[str, Any]], object] | None = None,
) -> None:
    """Refuse what cannot be searched for method ``method_name``: one :class:`SpaceError`, a line a problem.

    ``spaces`` are the keys to search (the method's own and the command line's, as :func:`combine`
    joins them); ``config_keys`` every dotted config key (:func:`labelemb.config.config_keys`);
    ``method_options`` the method's options with their defaults (:func:`labelemb.methods.options`);
    ``fixed`` the options a preset fixes (a preset's own setting is not searched); ``run_context`` the
    options the trainer fills in from the run (``labelemb.config.RUN_CONTEXT_OPTIONS``: lwr's
    ``epochs`` is ``train.epochs``, which is the key to search); ``build`` tries the
    method with some options and raises ValueError or TypeError when it refuses them
    (:func:`labelemb.methods.registry.method_builder`). A key is a config key when it is one
    (``train.lr``; ``seed``, as the command line's overrides read a bare key), else an option of the
    method (``tau``). Refused, each with its fix: a dotted key the config does not have, an option the
    method does not have (did-you-mean), an option a preset fixes or the run gives, a range of whole
    numbers for an option whose default is a float (or the reverse), and a bound the method refuses.
    """
    keys = list(config_keys)
    fixed = dict(fixed or {})
    context = set(run_context)
    lines = []
    for key, space in spaces.items():
        where = f"method {method_name!r}: --space {key}={space}"
        if "." in key or key in keys:
            if key not in keys:
                lines.append(f"{where}: {_unknown_config_key(key, keys)}")
            continue
        if key in fixed:
            lines.append(
                f"{where}: the preset {method_name!r} fixes {key}={fixed[key]!r}; search {key} on the "
                f"method it presets, or leave {key} out of --space"
            )
            continue
        if key in context and key in method_options:
            dotted = [name for name in keys if name.endswith(f".{key}")]
            instead = f"search {dotted[0]} instead" if dotted else f"leave {key} out of --space"
            lines.append(f"{where}: {key} is what the trainer gives the method from the run; {instead}")
            continue
        if key not in method_options:
            lines.append(f"{where}: {_unknown_option(key, method_name, method_options, keys)}")
            continue
        mismatch = _kind_mismatch(key, space, method_options[key])
        if mismatch is not None:
            lines.append(f"{where}: {mismatch}")
            continue
        if build is not None:
            for bound in space.bounds():
                refusal = _refusal(build, {key: bound})
                if refusal is not None:
                    lines.append(
                        f"{where}: the method does not accept {key}={bound!r} ({refusal}); "
                        "keep the range inside what the method accepts"
                    )
                    break
    if lines:
        raise SpaceError("\n".join(lines))


def _space(where: str, kind: str, low: Any, high: Any, log: bool, choices: tuple[Choice, ...]) -> Space:
    problem = _problem(kind, low, high, log, choices)
    if problem is not None:
        raise SpaceError(f"{where}: {problem}")
    return Space(kind, low, high, log, choices)  # type: ignore[arg-type]


def _problem(kind: str, low: Any, high: Any, log: bool, choices: tuple[Choice, ...]) -> str | None:
    """What is wrong with a space (its fix included), or None."""
    if kind not in KINDS:
        return f"unknown kind {kind!r}; one of {', '.join(KINDS)}"
    if kind == "categorical":
        if len(choices) < 2:
            return "give two choices or more, e.g. a|b (a single value is an override, key=value)"
        if len(set(map(_choice_text, choices))) < len(choices):
            return "a choice is listed twice; list each once"
        return None
    for name, value in (("low", low), ("high", high)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind == "int" and not isinstance(value, int)):
            wanted = "a whole number" if kind == "int" else "a number"
            return f"{name} must be {wanted}, got {value!r}"
        if not math.isfinite(value):
            return f"{name} must be finite, got {value!r}"
    if low >= high:
        if low == high:
            return (
                f"the range {low!r}:{high!r} is empty; widen it, or give the value as an override "
                f"(key={low!r}) and leave it out of --space"
            )
        return f"the range is inverted (low {low!r} > high {high!r}); write it as {high!r}:{low!r}"
    if log and low <= 0:
        start = "at 1" if kind == "int" else "above zero (e.g. 1e-5)"
        return f"a log range needs low > 0, got {low!r}; start it {start} or drop :log"
    return None


def _read_bound(where: str, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpaceError(
            f"{where}: cannot read {text!r} as a number; bounds are numbers, e.g. {key}=1e-4:1e-2"
        ) from None
    if not math.isfinite(value):
        raise SpaceError(f"{where}: the bound {text!r} is not finite; give finite numbers, e.g. {key}=0.1:10")
    return value


def _read_choice(word: str) -> Choice:
    lowered = word.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if _INT.fullmatch(word):
        return int(word)
    try:
        value = float(word)
    except ValueError:
        return word
    return value if math.isfinite(value) else word


def _choice_text(choice: Choice) -> str:
    if choice is None:
        return "none"
    if isinstance(choice, bool):
        return "true" if choice else "false"
    return repr(choice) if isinstance(choice, float) else str(choice)


def _unknown_config_key(key: str, keys: list[str]) -> str:
    if key.startswith("method.") and key.count(".") == 1:
        bare = key.removeprefix("method.")
        return f"a method's option is written bare on the command line: write {bare}=... instead of {key}"
    guess = difflib.get_close_matches(key, keys, n=1)
    hint = f"did you mean {guess[0]!r}?" if guess else "config keys are dotted, e.g. train.lr"
    return f"config key {key!r} does not exist; {hint}"


def _unknown_option(key: str, method_name: str, options: Mapping[str, Any], keys: list[str]) -> str:
    guess = difflib.get_close_matches(key, list(options), n=1)
    if guess:
        return f"method {method_name!r} has no option {key!r}; did you mean {guess[0]!r}?"
    dotted = [name for name in keys if name.endswith(f".{key}")]
    if dotted:
        return f"method {method_name!r} has no option {key!r}; did you mean the config key {dotted[0]!r}?"
    listed = ", ".join(options) or "none"
    return f"method {method_name!r} has no option {key!r}; its options are: {listed}"


def _kind_mismatch(key: str, space: Space, default: Any) -> str | None:
    """A range of whole numbers for an option whose default is a float, or of floats for one whose
    default is a whole number (a bool default is neither)."""
    if space.kind == "categorical" or isinstance(default, bool):
        return None
    if space.kind == "int" and isinstance(default, float):
        return (
            f"{key} is a float (its default is {default!r}) but the range is of whole numbers; "
            f"write {key}={float(space.low)!r}:{float(space.high)!r}" + (":log" if space.log else "")
        )
    if space.kind == "float" and isinstance(default, int):
        return (
            f"{key} takes whole numbers (its default is {default!r}) but the range is of floats; "
            f"write both bounds as whole numbers, e.g. {key}={math.ceil(space.low)}:{math.floor(space.high)}"
        )
    return None


def _refusal(build: Callable[[dict[str, Any]], object], options: dict[str, Any]) -> str | None:
    """The first line of why ``build`` refuses ``options``, or None when it builds."""
    try:
        build(options)
    except (ValueError, TypeError) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None
