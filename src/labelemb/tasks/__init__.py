"""Tasks: what differs between kinds of data, so that one loop trains them all.

A task is chosen from what a data set yields (:func:`build_task`): ``images`` train the
:class:`Classification` task (error %), ``token_pairs`` the sequence-to-sequence task
(:class:`SequenceTask`: decoding, BLEU / ROUGE). Every module of this package is imported here,
so a task file's ``@register`` is all it takes to add one.
"""

from __future__ import annotations

from ..registry import import_modules
from .base import Predict, Predictor, Selectable, Task, always_selectable, evaluate_check
from .calibration import CALIBRATION_FIELDS, ScaledCalibration
from .classification import Classification
from .decode import DecodeOptions
from .registry import (
    TASKS,
    build_task,
    dev_objective,
    input_kind,
    recorded_scoring,
    register,
    task_class,
)
from .scoring import TEST_ERROR, Scoring
from .seq2seq import SequenceTask

import_modules(__name__, __path__)

__all__ = [
    "CALIBRATION_FIELDS",
    "TASKS",
    "TEST_ERROR",
    "ScaledCalibration",
    "Classification",
    "DecodeOptions",
    "Predict",
    "Predictor",
    "Selectable",
    "Scoring",
    "SequenceTask",
    "Task",
    "build_task",
    "dev_objective",
    "always_selectable",
    "evaluate_check",
    "input_kind",
    "recorded_scoring",
    "register",
    "task_class",
]
