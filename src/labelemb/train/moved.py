"""The old paths of modules that moved out of train/ (issue 71: what turns a config into a run's
pieces moved to :mod:`labelemb.assembly`): each old module forwards its public names, with a
DeprecationWarning, for one release."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any


def forward_to(
    old: str, new: ModuleType | None, elsewhere: dict[str, tuple[str, Any]] | None = None
) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for the module that lived at ``old``: a name of ``new`` (or one of
    ``elsewhere``, name -> (its new home, it), for a name that went elsewhere) is handed on with a
    DeprecationWarning."""
    moved = elsewhere or {}

    def forwarded(name: str) -> Any:
        if name in moved:
            home, thing = moved[name]
        elif new is not None and not name.startswith("__") and hasattr(new, name):
            thing, home = getattr(new, name), new.__name__
        else:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} moved to {home} (issue 71); the old path goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return thing

    return forwarded
