"""Functions of a classifier's logits and labels: calibration and temperature scaling.

A leaf: it imports torch, numpy, scipy and scikit-learn and no other labelemb package, so that
tasks, analysis and a user's own code call the same figures (``labelemb.metrics.measure_calibration
(logits, labels)``).
"""

from __future__ import annotations

from .calibration import (
    BINS,
    FIGURES,
    Calibration,
    CalibrationSums,
    adaptive_ece,
    measure_calibration,
    pooled_bins,
)
from .temperature import TEMPERATURE_RANGE, TemperatureFit, fit_and_measure, fit_temperature

__all__ = [
    "BINS",
    "FIGURES",
    "TEMPERATURE_RANGE",
    "Calibration",
    "CalibrationSums",
    "TemperatureFit",
    "adaptive_ece",
    "fit_and_measure",
    "fit_temperature",
    "measure_calibration",
    "pooled_bins",
]
