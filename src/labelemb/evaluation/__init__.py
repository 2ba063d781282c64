"""Judging a finished run from its selected weights, beyond the error it trained for:
:mod:`.run` (evaluation.json: the test and dev splits' figures, selective classification,
conformal sets, the post-hoc maps, each OOD set of :mod:`.ood`, the disputed test labels of
:mod:`.disputed`, the noisy training labels) and :mod:`.shift` (shift.json: the figures on
corrupted copies of the test split, :mod:`.corrupted`). Each record is kept in the run folder
with what it was computed from, and computed again only when that changed.
"""

from __future__ import annotations

from .run import evaluate_run
from .shift import shift_run

__all__ = ["evaluate_run", "shift_run"]
