"""Moved to :mod:`labelemb.train.results` (issue 71: a check's record and which check a run reports
sit beside the run's summary, which reads them); this old path forwards, with a DeprecationWarning,
for one release."""

from __future__ import annotations

from . import results as _moved_here
from .moved import forward_to

__getattr__ = forward_to(__name__, _moved_here)
