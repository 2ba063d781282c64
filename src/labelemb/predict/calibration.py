"""A check's conformal calibration as a prediction holds it: the dev split's sorted scores of each
set method, what they were computed from, and what their sets reached on the test split
(:mod:`labelemb.predict.sets` computes, records and reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from ..metrics.conformal import conformal_threshold


class Measured(BaseModel):
    """What one score's sets reached on the run's test split: the share of labels in their set,
    and the mean number of classes in a set."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    coverage: float = Field(ge=0, le=1)
    set_size: float = Field(ge=0)


class CalibrationRecord(BaseModel):
    """What a calibration file's scores were computed from, and what their sets reached on test."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: int
    step: int = Field(ge=0)
    weights: str
    temperature: float | None = Field(gt=0, allow_inf_nan=False)
    dev_examples: int = Field(ge=1)
    level: float = Field(gt=0, lt=1)
    test: dict[str, Measured]


@dataclass(frozen=True)
class Calibration:
    """A check's dev scores (``scores[method]``, sorted, float64) and their :class:`CalibrationRecord`."""

    record: CalibrationRecord
    scores: dict[str, Tensor]

    def threshold(self, level: float, method: str) -> float:
        """The split-conformal threshold of ``method`` at the target coverage ``level``."""
        return conformal_threshold(self.scores[method], level)

    def measured(self, level: float, method: str) -> Measured | None:
        """What ``method``'s sets reached on the run's test split at ``level``, where it was measured."""
        return self.record.test.get(method) if level == self.record.level else None
