"""What a classification run records of its predictions' calibration, raw and after temperature
scaling; the figures themselves are functions of logits and labels in :mod:`labelemb.metrics`.

Every classification task records, for its test split at each check, the figures of
:func:`labelemb.metrics.measure_calibration` (ECE, AdaECE, classwise ECE, MCE, NLL, Brier) and the
bins of a reliability diagram. Where the data has a dev split, one temperature T is fit on the dev
split's logits by minimising their NLL (:func:`labelemb.metrics.fit_temperature`), and the same
figures are recorded again for the test logits divided by T (``test_ece_scaled``, ...), with
``temperature``; a check that can no longer become the run's selected one records the raw
top-probability figures alone (:func:`calibration_at_check`). The test split is never used to fit.
The run's summary keeps all of them at the selected check (``selected_test_ece``, ...):
:data:`CALIBRATION_FIELDS`. A check that can be selected also records the dev split's figures
(:data:`DEV_FIELDS`: its calibration, and the AURC of its confidence), which ``tune --objective``
judges a trial by.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import Tensor

from ..metrics.calibration import BINS, FIGURES, Calibration, CalibrationSums
from ..metrics.figures import SCALED
from ..metrics.recalibration import MAPS, cross_fitted_ece
from ..metrics.split import split_figures
from ..metrics.temperature import temperature_bound
from ..options import Options

#: The record keys a classification task adds at each check, which the summary keeps at the
#: selected check as ``selected_<key>``; the scaled ones and ``temperature`` only with a dev split.
CALIBRATION_FIELDS = (
    *(f"test_{figure}" for figure in FIGURES),
    "test_calibration",
    *(f"test_{figure}{SCALED}" for figure in FIGURES),
    f"test_calibration{SCALED}",
    "temperature",
)

#: The dev split's figures a check that can be selected records beside its error (what
#: ``tune --objective`` judges a trial by, at its selected check): its ECE and NLL raw, and after
#: the temperature fit on it, and the AURC of its max-softmax confidence (in %, 0-100).
DEV_FIELDS = ("dev_ece", "dev_nll", "dev_ece_scaled", "dev_nll_scaled", "dev_aurc")
#: The dev ECE (%) after each post-hoc map, cross-fitted on the dev split
#: (:func:`~labelemb.metrics.recalibration.cross_fitted_ece`): recorded only for the maps the
#: config's ``recalibration.dev_maps`` names (``tune --objective ece_<map>`` names its map).
MAP_DEV_FIELDS = tuple(f"dev_ece_{name}" for name in MAPS)

logger = logging.getLogger(__name__)


class RecalibrationOptions(Options):
    """The config's ``recalibration:`` section of a classifier: ``dev_maps``, the post-hoc maps
    whose cross-fitted dev ECE every check that can be selected records (``dev_ece_<map>``), what
    ``tune --objective ece_<map>`` judges a trial by. Empty by default: a run's maps are fit once,
    on its selected weights, by its evaluation."""

    section: ClassVar[str] = "recalibration"
    #: Which dev figures a check records never changes what the run learns.
    not_results: ClassVar[tuple[str, ...]] = ("dev_maps",)

    dev_maps: list[Literal["vector", "dirichlet", "binning", "isotonic"]] = Field(default_factory=list)


def dev_map_figures(logits: Tensor, labels: Tensor, maps: tuple[str, ...]) -> dict[str, float]:
    """``dev_ece_<map>`` of each of ``maps`` on the dev split (cross-fitted); a map the split
    cannot fit is left out with one line saying why (a trial judged by it then says it lacks it)."""
    figures: dict[str, float] = {}
    for name in maps:
        try:
            figures[f"dev_ece_{name}"] = cross_fitted_ece(logits, labels, name)
        except ValueError as error:
            logger.warning("no dev ECE after %s: %s", name, error)
    return figures


def calibration_record(calibration: Calibration, split: str, suffix: str = "") -> dict[str, Any]:
    """The fields of a check's record: ``<split>_ece<suffix>``, ... (the figures computed: runs
    recorded before a figure existed leave it out too), ``<split>_calibration<suffix>`` (the bins)
    and, where a logit was not finite, ``<split>_non_finite<suffix>`` (how many)."""
    figures = {f"{split}_{figure}{suffix}": value for figure, value in calibration.figures().items()}
    record = {**figures, f"{split}_calibration{suffix}": calibration.reliability()}
    if calibration.non_finite:
        record[f"{split}_non_finite{suffix}"] = calibration.non_finite
    return record


def dev_calibration(
    logits: Tensor, labels: Tensor, maps: tuple[str, ...] = ()
) -> tuple[float | None, dict[str, float]]:
    """The temperature fit on the dev split's ``logits`` and the dev figures of :data:`DEV_FIELDS`
    (the ECE and NLL at T = 1 and at the T fit: :func:`labelemb.metrics.fit_and_measure`; the AURC
    of the raw max-softmax confidence, in %: :func:`labelemb.metrics.aurc`, ties spread evenly),
    and the cross-fitted ECE after each of ``maps`` (:func:`dev_map_figures`); None and no figures
    where a logit is not finite (a diverged model: nothing to fit, nothing to scale, no confidence
    to rank)."""
    measured = split_figures(logits, labels, fit=True)
    if measured is None:
        return None, {}
    temperature, figures = measured
    # The dev error is the check's own (counted as the selection counts it), not the producer's.
    dev = {field: figures[field.removeprefix("dev_")] for field in DEV_FIELDS}
    return temperature, {**dev, **dev_map_figures(logits, labels, maps)}


class ScaledCalibration:
    """A split's calibration raw and, given a temperature fit on the dev split, scaled by it: both
    added batch by batch from the same logits (:class:`CalibrationSums` each). ``top_only``: the
    raw top-probability figures alone (ECE, MCE, NLL and the bins), nothing scaled."""

    def __init__(self, temperature: float | None, bins: int = BINS, *, top_only: bool = False) -> None:
        self.temperature = None if top_only else temperature
        self.raw = CalibrationSums(bins, top_only=top_only)
        self.scaled = None if self.temperature is None else CalibrationSums(bins)

    def add(self, logits: Tensor, labels: Tensor) -> None:
        # Moved to the CPU in float64 once for both sums.
        logits, labels = logits.detach().cpu().double(), labels.detach().cpu().long()
        self.raw.add(logits, labels)
        if self.scaled is not None and self.temperature is not None:
            self.scaled.add(logits / self.temperature, labels)

    def record(self, split: str) -> dict[str, Any]:
        """The raw figures, and with a temperature the scaled ones (``<split>_ece_scaled``, ...)
        and ``temperature``, with ``temperature_at_bound`` (``floor`` or ``ceiling``) where the
        temperature is a bound of its range (:func:`labelemb.metrics.temperature_bound`)."""
        record = calibration_record(self.raw.result(), split)
        if self.scaled is not None:
            record.update(calibration_record(self.scaled.result(), split, SCALED))
            record["temperature"] = self.temperature
            bound = temperature_bound(self.temperature)
            if bound is not None:  # a fit with no minimum inside its range: the run warns of it
                record["temperature_at_bound"] = bound
        return record


def calibration_at_check(temperature: float | None, selectable: bool) -> ScaledCalibration:
    """The test split's sums at a check: every figure, raw and (with a temperature) scaled, where
    the check can still be the run's selected one, whose summary keeps them; else the raw
    top-probability figures alone (ECE, MCE, NLL and the bins: a curve over the checks), for
    about a fifth of the sums' cost."""
    if selectable:
        return ScaledCalibration(temperature)
    return ScaledCalibration(None, top_only=True)
