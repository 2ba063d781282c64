"""Task names: each task class registers itself with the kind of data it trains on, and its options.

A task's options (the sequence task's decoding) are an :class:`~labelemb.options.Options` schema
declared beside it; the config holds them as a top-level section of that schema's name (``decode:``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from ..options import Options
from ..registry import Registry
from .scoring import TEST_ERROR, Scoring

T = TypeVar("T", bound=type)

#: Every task; an entry's ``info["serves"]`` is what a data set must yield for it.
TASKS: Registry[type] = Registry("task")


def register(name: str, *, serves: str, options: tuple[type[Options], ...] = ()) -> Callable[[T], T]:
    """Class decorator: the task that trains on data sets yielding ``serves`` (``images``, ...);
    ``options`` are the schemas of its config sections."""
    for schema in options:
        taken = option_sections().get(schema.section)
        if not schema.section or (taken is not None and taken is not schema):
            raise ValueError(f"{schema.__name__} needs a section name no other task's options have")
    return TASKS.register(name, serves=serves, options=tuple(options))


def data_kind(yields: str) -> str:
    """How a message names data that yields ``yields``: the task that trains on it says
    (``data_kind``, e.g. "an image data set"); the kind itself if no task declares it."""
    for entry in TASKS.entries():
        if entry.info["serves"] == yields:
            return getattr(entry.thing, "data_kind", yields)
    return yields


def input_kind(yields: str) -> str:
    """What a backbone must read for data that yields ``yields``: the inputs its task's batches
    hold (a multi-label text task's are ``texts``, as a single-label one's), by default the kind
    itself."""
    return getattr(task_class(yields), "inputs", yields)


def option_schemas(task: type) -> tuple[type[Options], ...]:
    """The option schemas of a task class."""
    return next((e.info["options"] for e in TASKS.entries() if e.thing is task), ())


def option_sections() -> dict[str, type[Options]]:
    """Every registered task's option sections, by section name."""
    return {schema.section: schema for entry in TASKS.entries() for schema in entry.info["options"]}


def task_class(yields: str) -> type:
    """The task that trains on data yielding ``yields``; a ValueError if none does."""
    for entry in TASKS.entries():
        if entry.info["serves"] == yields:
            return entry.thing
    served = ", ".join(f"{e.info['serves']} ({e.name})" for e in TASKS.entries())
    raise ValueError(f"no task trains on data that yields {yields!r}; tasks serve: {served}")


def dev_objective(task: type, selection_metric: str | None = None) -> tuple[tuple[str, ...], bool]:
    """What tuning optimises for runs of ``task`` before any data is read: the record keys of the dev
    score that selects a run's check (the first of them a run records is used: a sequence task's is
    BLEU or ROUGE-L, as its corpus says) and whether higher is better. A task says so with a
    classmethod ``objective(selection_metric)``; one whose ``selection_metric`` and
    ``lower_is_better`` are plain class values needs none."""
    if callable(getattr(task, "objective", None)):
        keys, higher = task.objective(selection_metric)
        return tuple(keys), bool(higher)
    key, lower = getattr(task, "selection_metric", None), getattr(task, "lower_is_better", None)
    if isinstance(key, str) and isinstance(lower, bool):
        return (selection_metric or key,), not lower
    raise ValueError(
        f"task {task.__name__} does not say which dev score selects its checks before its data is "
        "read; give it a classmethod objective(selection_metric) -> (dev keys, higher_is_better)"
    )


def build_task(config: Any, dataset: Any) -> Any:
    """The task of a run: chosen by what ``dataset`` yields, set up from ``config`` (a RunConfig)."""
    return task_class(dataset.yields).for_run(config, dataset)


def recorded_scoring(summary: dict[str, Any]) -> Scoring:
    """How a finished run's figure reads: the scoring its summary recorded.

    Summaries written before runs recorded it name their metric only (classification's not even
    that): the registered task that scores by that metric says how it reads.
    """
    if "scoring" in summary:
        return Scoring.from_record(summary["scoring"])
    key = summary.get("metric", TEST_ERROR.metric)
    names = figure_names()
    for scoring in _scorings():
        if scoring.metric == key:
            reported = [m for m in summary.get("reported_metrics", ()) if m != key]
            return replace(scoring, reported=tuple((m, names.get(m, m)) for m in reported))
    raise ValueError(f"no registered task scores runs by {key!r}; is the package that defines it imported?")


def _scorings() -> list[Scoring]:
    return [scoring for entry in TASKS.entries() for scoring in getattr(entry.thing, "scorings", ())]


def figure_names() -> dict[str, str]:
    """Summary key -> name of every figure the registered tasks report (``test_bleu``: ``test BLEU``)."""
    return {key: name for scoring in _scorings() for key, name in scoring.names().items()}
