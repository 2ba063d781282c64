"""When a progress bar is drawn: one rule for every bar of the library and the command line.

A bar redraws itself with carriage returns, which a terminal (or a notebook's widget) turns into
one line that moves; a log file or CI keeps every redraw. So a bar is drawn only where progress is
wanted (``--no-progress`` / ``train.progress: false`` turn it off) and stderr is a terminal or a
notebook; elsewhere each caller says what it has to say in plain lines, or nothing.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from tqdm import tqdm

#: Whether a command of the command line is running (:func:`as_command`).
_COMMAND: ContextVar[bool] = ContextVar("labelemb_command", default=False)


def draws_bar(enabled: bool) -> bool:
    """Whether a progress bar is drawn: ``enabled`` and stderr is a terminal or a notebook."""
    # A notebook's stderr is no terminal, but tqdm draws a widget (or a line it rewrites) there.
    return enabled and (sys.stderr.isatty() or "ipykernel" in sys.modules)


@contextmanager
def as_command() -> Iterator[None]:
    """Within it, a command of the command line is running: what runs after training says its
    lines even with ``--no-progress`` (a log keeps them), where a library call with
    ``progress=False`` writes nothing (:func:`says_lines`)."""
    token = _COMMAND.set(True)
    try:
        yield
    finally:
        _COMMAND.reset(token)


def says_lines(progress: bool) -> bool:
    """Whether :class:`Steps` off a terminal write their lines: with ``progress``, or in a command."""
    return progress or _COMMAND.get()


class Steps:
    """Work of ``total`` counted steps shown as it goes (what runs after training: evaluation, OOD
    sets, conformal calibration, corrupted copies): a bar on a terminal, with the step just done
    beside it; off one, a line when it starts, one at each quarter and one when it ends, each with
    the time so far. ``bar``: a bar may be drawn (progress is on); ``lines``: else the lines are
    written (a command's lines are, even with ``--no-progress``; a library call's are not)."""

    def __init__(
        self, what: str, total: int, unit: str, *, bar: bool, lines: bool = True, detail: str = ""
    ) -> None:
        self.what, self.total, self.unit, self.done = what, max(total, 0), unit, 0
        self.start = time.perf_counter()
        self.bar: Any = None
        self.lines = False
        if draws_bar(bar):
            self.bar = tqdm(total=self.total, desc=what, unit=unit, leave=False, file=sys.stderr)
        elif lines:
            self.lines = True
            self._say(f"{self.total} {unit}(s){detail}")

    def step(self, note: str = "") -> None:
        """One more step done (``note``: which)."""
        self.advance(self.done + 1, note)

    def advance(self, done: int, note: str = "") -> None:
        """``done`` steps done in all (a step read back rather than computed is done at once)."""
        done = min(max(done, self.done), self.total)
        before, self.done = self.done, done
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)  # drawn with the count
            self.bar.update(done - before)
        elif self.lines and done < self.total:
            quarters = [math.ceil(self.total * q / 4) for q in (1, 2, 3)]
            if any(before < mark <= done for mark in quarters):
                self._say(f"{done}/{self.total} {self.unit}(s), {self.seconds():.0f} s")

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def close(self) -> None:
        """The end: the bar cleared, and one line of how many steps took how long."""
        if self.bar is not None:
            self.bar.close()
        if self.bar is not None or self.lines:
            self._say(f"{self.done} {self.unit}(s) in {self.seconds():.1f} s")

    def _say(self, text: str) -> None:
        print(f"{self.what}: {text}", file=sys.stderr, flush=True)

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def one_line(error: BaseException) -> str:
    """An error's message on one line (a data set's own may list the places it looked, a line each)."""
    return " ".join(str(error).split())
