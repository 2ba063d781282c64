"""Functions of a classifier's logits and labels: calibration, temperature scaling and
richer post-hoc maps (:mod:`~labelemb.metrics.calibration`, :mod:`~labelemb.metrics.temperature`,
:mod:`~labelemb.metrics.recalibration`), selective classification
(:mod:`~labelemb.metrics.selective`), out-of-distribution detection (:mod:`~labelemb.metrics.ood`),
both together (:mod:`~labelemb.metrics.scod`) and split-conformal prediction sets
(:mod:`~labelemb.metrics.conformal`); every figure they give declared once, with its stored unit,
direction and table head (:mod:`~labelemb.metrics.figures`), and one split's figures from one
producer (:mod:`~labelemb.metrics.split`).

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
from .conformal import (
    calibrate_threshold,
    conformal_figures,
    conformal_threshold,
    coverage_and_size,
    prediction_sets,
)
from .figures import DECLARED, Figure, declare, figure_of
from .ood import SCORES, detection_figures, fpr_at_tpr, ood_figures
from .recalibration import MAPS, cross_fitted_ece, fit_map, recalibration_figures
from .scod import scod_figures, scod_risk_curve
from .selective import (
    augrc,
    aurc,
    choose_norm_p,
    coverage_at_risk,
    max_softmax,
    msp_risk_curve,
    pnorm_confidence,
    risk_at_coverage,
    risk_at_coverages,
    risk_coverage_curve,
    selective_figures,
)
from .split import split_figures
from .temperature import (
    TEMPERATURE_RANGE,
    TemperatureFit,
    fit_and_measure,
    fit_temperature,
    temperature_bound,
)

__all__ = [
    "BINS",
    "DECLARED",
    "FIGURES",
    "MAPS",
    "SCORES",
    "TEMPERATURE_RANGE",
    "Calibration",
    "CalibrationSums",
    "Figure",
    "TemperatureFit",
    "adaptive_ece",
    "augrc",
    "aurc",
    "calibrate_threshold",
    "choose_norm_p",
    "conformal_figures",
    "conformal_threshold",
    "coverage_and_size",
    "coverage_at_risk",
    "cross_fitted_ece",
    "declare",
    "detection_figures",
    "fit_and_measure",
    "fit_map",
    "figure_of",
    "fit_temperature",
    "fpr_at_tpr",
    "max_softmax",
    "measure_calibration",
    "msp_risk_curve",
    "ood_figures",
    "pnorm_confidence",
    "prediction_sets",
    "recalibration_figures",
    "pooled_bins",
    "risk_at_coverage",
    "risk_at_coverages",
    "risk_coverage_curve",
    "scod_figures",
    "scod_risk_curve",
    "selective_figures",
    "split_figures",
    "temperature_bound",
]
