"""Steps a run's config takes before anything trains, each served by a room above the one that
trains it.

``labelemb.train`` and ``labelemb.compare`` (:mod:`labelemb.experiment`) hand their config to
:func:`prepared` before their runs train; a step returns the config the runs train instead (the
``clean:`` step makes a list of wrong labels with the cross-fitted runs of
:mod:`labelemb.label_issues`, a floor above the experiment's, and returns the config that trains
on the rows it keeps). The steps are registered in :data:`STEPS` at the package's front door
(``labelemb/__init__.py``), which knows every room, as the trackers' callback is in
:data:`labelemb.callbacks.DEFAULTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .registry import Registry

#: The steps every config takes before its runs train: name -> config -> the config to train.
STEPS: Registry[Callable[[Any], Any]] = Registry("config step")


def prepared(config: Any) -> Any:
    """``config`` after each registered step, by name (a step that has nothing to do hands it back)."""
    for entry in STEPS.entries():
        config = entry.thing(config)
    return config


__all__ = ["STEPS", "prepared"]
