"""Task names: each task class registers itself with the kind of data it trains on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..registry import Registry

T = TypeVar("T", bound=type)

#: Every task; an entry's ``info["serves"]`` is what a data set must yield for it.
TASKS: Registry[type] = Registry("task")


def register(name: str, *, serves: str) -> Callable[[T], T]:
    """Class decorator: the task that trains on data sets yielding ``serves`` (``images``, ...)."""
    return TASKS.register(name, serves=serves)


def task_class(yields: str) -> type:
    """The task that trains on data yielding ``yields``; a ValueError if none does."""
    for entry in TASKS.entries():
        if entry.info["serves"] == yields:
            return entry.thing
    served = ", ".join(f"{e.info['serves']} ({e.name})" for e in TASKS.entries())
    raise ValueError(f"no task trains on data that yields {yields!r}; tasks serve: {served}")


def build_task(config: Any, dataset: Any) -> Any:
    """The task of a run: chosen by what ``dataset`` yields, set up from ``config`` (a RunConfig)."""
    return task_class(dataset.yields).for_run(config, dataset)
