"""A run that fails stays with its run: the grid records it, goes on with the rest, and lists the
failed runs at the end (:class:`RunsFailed`); an out-of-memory among runs sharing a device is
tried once more alone (:func:`retry_alone`)."""

from __future__ import annotations

import pickle
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: torch's out-of-memory (``torch.OutOfMemoryError`` from torch 2.5; ``torch.cuda``'s before).
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass(frozen=True)
class Failure:
    """How a unit of work failed: one line of reason, whether it ran out of memory, the exception
    itself where it can travel between processes (raised again by a caller that does not keep
    failures, such as a tuning round), and whether its worker died instead."""

    reason: str
    out_of_memory: bool = False
    error: BaseException | None = None
    worker_died: bool = False  # the worker training it died on every try (not the run's error)

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        """The failure of ``error``, its traceback's frames let go of (:func:`let_go_of_frames`)."""
        let_go_of_frames(error)
        return cls(one_line(error), is_out_of_memory(error), error if _travels(error) else None)

    def raise_(self) -> None:
        """Raise the run's own exception (or a RuntimeError of its reason where it did not travel)."""
        if self.error is not None:
            raise self.error
        raise RuntimeError(self.reason)


@dataclass(frozen=True)
class FailedRun:
    """One failed run of a grid: which (``method seed N``), its folder and its reason."""

    label: str
    folder: str
    reason: str


class RunsFailed(RuntimeError):
    """Some runs of a grid failed, each recorded with its reason; the others trained."""

    def __init__(self, failed: Sequence[FailedRun], summaries: list[dict]) -> None:
        self.failed = list(failed)
        self.summaries = summaries  # the runs that finished, in the grid's order
        super().__init__(f"{len(self.failed)} run(s) failed:\n{failure_table(self.failed)}")


def one_line(error: BaseException) -> str:
    """``TypeName: first line of the message``, or the message alone where it names its type."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return f"{type(error).__name__}: {lines[0]}"


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is torch's out-of-memory, on a GPU or the CPU."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (_OUT_OF_MEMORY, MemoryError)):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


def let_go_of_frames(error: BaseException) -> None:
    """Clear the locals of the finished frames ``error`` (and what caused it) passed through, keeping
    its traceback's lines: a failure kept while the grid goes on would otherwise keep what they held
    (the failed runs' networks and optimiser states), beside the runs that train next or the same
    runs tried again alone after an out-of-memory."""
    todo, seen = [error], set()
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)  # a frame still running is left as it is
        todo += [current.__cause__, current.__context__]


def failure_table(failed: Sequence[FailedRun]) -> str:
    """The failed runs as a Markdown table: run, folder, reason."""
    rows = ["| run | folder | reason |", "| --- | --- | --- |"]
    rows += [f"| {f.label} | {f.folder} | {f.reason.replace('|', '/')} |" for f in failed]
    return "\n".join(rows)


def retry_alone(
    failures: dict[int, Failure], labels: Callable[[int], str], run_alone: Callable[[int], None]
) -> None:
    """Each unit that ran out of memory beside others, once more with nothing else of the grid
    beside it (``run_alone(i)``, one after another), said in one line each."""
    for i in sorted(i for i, failure in failures.items() if failure.out_of_memory):
        print(f"{labels(i)} ran out of memory beside other runs: trying it once more alone", file=sys.stderr)
        del failures[i]
        run_alone(i)


def _travels(error: BaseException) -> bool:
    """Whether the exception pickles and unpickles (a worker's result crosses a process)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True
