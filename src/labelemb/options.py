"""Options a data set or a task declares beside its own code, and how a config section is read as them.

A data set with an option of its own declares a small schema (an :class:`Options` subclass) and
registers with it: ``@data.register("tiny", yields="texts", options=(TinyOptions,))``. The config's
section of that name (``data.tiny: {subset: 3}``; a task's at the top, as ``decode:``) is then
checked against the schema before any data is read, with the did-you-mean errors of every other
key, and the loader gets the checked values (``request.options(TinyOptions)``). Nothing central
lists the keys.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

OptionsT = TypeVar("OptionsT", bound="Options")


class OptionsError(ValueError):
    """A config section does not fit its schema; the message names the key and the fix."""


class Options(BaseModel):
    """The options of one data set or task: a pydantic model whose fields are the section's keys.

    ``section`` is the key its values are written under (``files`` for ``data.files``; ``decode``
    for the sequence task's ``decode:``); ``not_results`` names the keys that never change a run's
    numbers (a batch size for decoding), so that a run folder does not count them as a change.
    """

    model_config = ConfigDict(extra="forbid")

    section: ClassVar[str] = ""
    not_results: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        """Raise :class:`OptionsError` when the keys do not fit together (a format that needs a
        path it lacks); run for the sections of the data set or task the config names."""

    @classmethod
    def keys(cls) -> list[str]:
        """The section's keys, in the order they are declared."""
        return list(cls.model_fields)

    @classmethod
    def comparable(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (a checked section, as JSON) without the keys that never change results."""
        return {key: value for key, value in values.items() if key not in cls.not_results}


def read_options(schema: type[OptionsT], raw: Any, where: str) -> OptionsT:
    """``raw`` (a config section, or None for its defaults) checked against ``schema``.

    ``where`` is the section's dotted path in the config (``data.files``): every error names the
    full key, with a did-you-mean for a key the schema does not have.
    """
    if raw is None:
        raw = {}
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        raise OptionsError(f"config key {where!r} is a section of options; got {raw!r}, e.g. {where}: {{}}")
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise OptionsError(describe_errors(error, schema, where)) from None


def describe_errors(error: ValidationError, schema: type[Options], where: str) -> str:
    """One line per problem: ``config key 'data.files.formt' does not exist; did you mean ...?``."""
    lines = []
    for item in error.errors():
        key = ".".join([where, *(str(part) for part in item["loc"])])
        if item["type"] == "extra_forbidden":
            keys = [f"{where}.{name}" for name in schema.keys()]
            guess = difflib.get_close_matches(key, keys, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else f"; valid keys: {', '.join(keys)}"
            lines.append(f"config key {key!r} does not exist{hint}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"config key {key!r}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)
