"""A method that reads the dev split's predictions and records what it is handed, for the tests of
that door (``Method.reads_dev``): the trainer's (tests/training/test_dev_predictions.py) and the
adapters' (tests/integrations/).

The test files share these (``from dev_checks import RecordingMethod``): tests/ is on the path.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from labelemb import methods
from labelemb.methods.abilities import EpochState, ReadsDev
from labelemb.registry import Entry

#: What a recording method was handed, in order: ("dev", logits, labels) and ("epoch_end",), of every
#: copy of it (seeds stacked too: a module-level list, which copying a module leaves shared).
EVENTS: list[tuple] = []
#: Whether the method was in training mode at each logits computed without gradient.
MODES: list[bool] = []


class RecordingMethod(ReadsDev, EpochState, methods.OneHot):
    """Cross-entropy that reads the dev split's predictions and records them."""

    name = "recorder"

    def logits(self, features: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            MODES.append(self.training)
        return super().logits(features)

    def on_dev_predictions(self, logits: Tensor, labels: Tensor) -> None:
        EVENTS.append(("dev", logits.clone(), labels.clone()))

    def on_epoch_end(self) -> None:
        EVENTS.append(("epoch_end",))


class DeafMethod(RecordingMethod):
    """The same hooks without the trait: no trainer hands it the dev split's predictions."""

    name = "deaf"
    reads_dev = False


def register_recorders(monkeypatch: pytest.MonkeyPatch) -> None:
    """``recorder`` and ``deaf`` buildable by name for one test, their records empty."""
    for cls in (RecordingMethod, DeafMethod):
        monkeypatch.setitem(methods.registry.METHODS._entries, cls.name, Entry(cls.name, cls))
    EVENTS.clear()
    MODES.clear()


def kinds() -> list[str]:
    """The kinds of the events so far, in order."""
    return [event[0] for event in EVENTS]


def dev_events() -> list[tuple]:
    return [event for event in EVENTS if event[0] == "dev"]
