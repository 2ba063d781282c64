"""Which corruptions, at which severities, a shift evaluation runs: its conditions.

A config's ``shift:`` list (and ``labelemb shift --corruptions``) holds entries of three kinds:

- a suite: ``mnist-c`` (the fifteen corruptions of MNIST-C, Mu & Gilmer 2019, each at the
  severity that set uses), ``severities`` (the image corruptions with a natural strength at each
  of their five severities, Hendrycks & Dietterich 2019), ``text`` (the text perturbations at each
  of their five rates);
- a corruption's name: at its default severity (MNIST-C's, else its middle one);
- ``name@3`` at severity 3, ``name@all`` at every severity it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...registry import unknown_name_message
from .base import CORRUPTIONS, Corruption, corruption

#: The fifteen corruptions of MNIST-C, in the order of its paper's table.
MNIST_C = (
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "shear",
    "scale",
    "rotate",
    "brightness",
    "translate",
    "stripe",
    "fog",
    "spatter",
    "dotted_line",
    "zigzag",
    "canny_edges",
)
SUITES = ("mnist-c", "severities", "text")


@dataclass(frozen=True, order=True)
class Condition:
    """One corruption at one severity: a column of a shift evaluation."""

    name: str
    severity: int

    @property
    def key(self) -> str:
        """How records and tables name it: ``rotate@2``."""
        return f"{self.name}@{self.severity}"

    @property
    def corruption(self) -> Corruption:
        return corruption(self.name)


def conditions(entries: Sequence[str], reads: str) -> list[Condition]:
    """The conditions ``entries`` name (see the module docstring), in order and once each, for a
    run that reads ``reads`` (``images`` or ``texts``); a ValueError in one line naming the entry
    that is not one, or a corruption of the other kind."""
    chosen: list[Condition] = []
    for entry in entries:
        for condition in _entry_conditions(str(entry).strip(), reads):
            if condition not in chosen:
                chosen.append(condition)
    return chosen


def _entry_conditions(entry: str, reads: str) -> list[Condition]:
    if entry in SUITES:
        return _suite(entry, reads)
    name, _, severity = entry.partition("@")
    if name not in CORRUPTIONS:
        raise ValueError(unknown_name_message("corruption", name, [*SUITES, *CORRUPTIONS.names()]))
    found = corruption(name)
    _check_kind(found, reads, entry)
    if not severity:
        return [Condition(name, found.default_severity())]
    if severity == "all":
        return [Condition(name, s) for s in found.severities()]
    if not severity.isdigit():
        raise ValueError(f"shift entry {entry!r}: write a severity as name@3 or name@all")
    found.level(int(severity))  # a ValueError naming the severities it has
    return [Condition(name, int(severity))]


def _suite(entry: str, reads: str) -> list[Condition]:
    wanted = "texts" if entry == "text" else "images"
    if wanted != reads:
        raise ValueError(
            f"shift suite {entry!r} corrupts {wanted}, but this run reads {reads}: "
            f"use {'text' if reads == 'texts' else 'mnist-c or severities'}"
        )
    if entry == "mnist-c":
        return [Condition(name, corruption(name).default_severity()) for name in MNIST_C]
    scaled = [c for c in (CORRUPTIONS.get(n) for n in CORRUPTIONS.names()) if c.scaled and c.reads == wanted]
    return [Condition(c.name, s) for c in scaled for s in c.severities()]


def _check_kind(found: Corruption, reads: str, entry: str) -> None:
    if found.reads != reads:
        others = ", ".join(n for n in CORRUPTIONS.names() if CORRUPTIONS.get(n).reads == reads)
        raise ValueError(
            f"corruption {entry!r} applies to {found.reads}, but this run reads {reads}: use one of "
            f"{others or 'none yet'}"
        )
