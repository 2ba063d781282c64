"""Conformal prediction sets for new inputs, calibrated on the run's own dev split
(``labelemb predict --sets``, :meth:`~labelemb.predict.Predictor.predict_sets`).

A run's calibration (:class:`Calibration`) is the conformal score of each dev example's label at
its selected check, one sorted float64 tensor per score of :data:`~labelemb.metrics.conformal.METHODS`
(never randomised: a prediction's set must not depend on a draw), with what the scores were
computed from (the check's step, a digest of its weights, its temperature) and, per score, the
coverage and mean size the same sets reached on the run's test split at the level its evaluation
judges (90 %). It is recorded once in the run folder's ``conformal.safetensors`` when the run is
evaluated (for a run evaluated before, the first time sets are asked of it: computed from its dev
and test splits, read as the run read them) and carried into an exported bundle, so that the
threshold at any level in (0, 1), the k-th smallest dev score with k = ceil((n + 1) level)
(:func:`~labelemb.metrics.conformal.conformal_threshold`), is served without the data.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from ..assembly import load_run_data
from ..metrics.conformal import (
    METHODS,
    check_level,
    conformal_threshold,
    coverage_and_size,
    label_scores,
    prediction_sets,
    probabilities,
)
from ..rundir import CONFORMAL_FILE, RunDir, load_safetensors, save_safetensors
from .calibration import Calibration, CalibrationRecord, Measured
from .description import RE_EXPORT, bundle_file
from .raw_texts import split_inputs
from .reading import data_config
from .source import BUNDLE_FILE, PredictError, Trained, weights_digest
from .tags import refuse_tag_sets

logger = logging.getLogger(__name__)

#: The target coverage of the conformal sets a run's evaluation reports (and records beside them).
CONFORMAL_COVERAGE = 0.9

#: The score of a prediction's sets unless told otherwise: THR, deterministic and the smallest.
SET_METHOD = "thr"
#: What a calibration file is; the key of its metadata.
CALIBRATION_FORMAT = 1
METADATA_KEY = "labelemb"


@dataclass(frozen=True)
class PredictionSet:
    """One input's conformal prediction set: its classes in descending probability, with each one's."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]


def check_request(level: float, method: str) -> tuple[float, str]:
    """``level`` and ``method`` where they name a prediction set, else a one-line PredictError."""
    if method not in METHODS:
        raise PredictError(f"unknown set method {method!r}; choose one of {', '.join(METHODS)}")
    try:
        return check_level(level), method
    except ValueError as error:
        raise PredictError(f"prediction sets: {error}") from None


def read_sets(
    logits: Tensor, calibration: Calibration, level: float, method: str, trained: Trained
) -> list[PredictionSet]:
    """Each row of ``logits``'s set at ``level`` with ``method``, calibrated by ``calibration``."""
    scale = _scale(trained.temperature)
    members = prediction_sets(logits, calibration.threshold(level, method), method, temperature=scale)
    probs = probabilities(logits, scale)
    # Each row's classes in descending probability (ties in class order), those in its set kept.
    order = probs.sort(dim=-1, descending=True, stable=True).indices
    kept = members.gather(-1, order)
    classes = order[kept].tolist()
    chosen = probs.gather(-1, order)[kept].tolist()
    names = trained.class_names
    out, start = [], 0
    for size in kept.sum(-1).tolist():
        picked = classes[start : start + size]
        out.append(PredictionSet(tuple(names[k] for k in picked), tuple(chosen[start : start + size])))
        start += size
    return out


def calibration_for(predictor: Any, data_dir: str | None = None) -> Calibration:
    """The calibration of ``predictor``'s check: its bundle's, the run folder's where it fits the
    check, else computed from the run's dev and test splits (read from ``data_dir`` where given) and
    recorded where the check is a finished run's selected one; a one-line PredictError where the
    run can have none. ``predictor`` is a :class:`~labelemb.predict.Predictor` (not named here:
    the predictor imports this module)."""
    trained = predictor.trained
    if predictor.reads not in ("images", "texts"):
        raise PredictError(
            f"{trained.origin} is a sequence-to-sequence run: it has no class scores, so no prediction sets"
        )
    refuse_tag_sets(
        trained,
        "conformal prediction sets are sets of classes of one softmax, and its tags are each chosen by "
        "their own sigmoid probability: drop --sets (choose how many tags with --threshold P or --top-k K)",
    )
    if trained.calibration is not None:
        return trained.calibration
    if (trained.origin / BUNDLE_FILE).is_file():
        raise PredictError(
            f"{trained.origin} fit no conformal threshold: the bundle holds no conformal scores (its run "
            "has no dev split, or had recorded none when it was exported); run `labelemb evaluate RUN` "
            "on its run and export it again"
        )
    folder = RunDir(trained.origin)
    held = _recorded(folder, trained)
    if held is not None:
        return held
    calibration = _computed(predictor, data_dir)
    if trained.checkpoint == "selected" and folder.is_finished():
        write_calibration(folder, calibration)
    return calibration


def calibrate(
    trained: Trained, dev_logits: Tensor, dev_labels: Tensor, test_logits: Tensor, test_labels: Tensor
) -> Calibration:
    """The calibration of ``trained``'s check from its dev and test logits (see the module docstring)."""
    if not (bool(torch.isfinite(dev_logits).all()) and bool(torch.isfinite(test_logits).all())):
        raise PredictError(
            f"{trained.origin} fit no conformal threshold: its scores are not finite (a diverged model)"
        )
    scale = _scale(trained.temperature)
    dev_probs = probabilities(dev_logits, scale)
    scores = {m: label_scores(dev_probs, dev_labels, m).sort().values.contiguous() for m in METHODS}
    test = {}
    for method in METHODS:
        threshold = conformal_threshold(scores[method], CONFORMAL_COVERAGE)
        sets = prediction_sets(test_logits, threshold, method, temperature=scale)
        coverage, size = coverage_and_size(sets, test_labels)
        test[method] = Measured(coverage=coverage, set_size=size)
    record = CalibrationRecord(
        format=CALIBRATION_FORMAT,
        step=trained.step,
        weights=weights_digest(trained.weights),
        temperature=trained.temperature,
        dev_examples=len(dev_logits),
        level=CONFORMAL_COVERAGE,
        test=test,
    )
    return Calibration(record, scores)


def write_calibration(folder: RunDir, calibration: Calibration) -> None:
    """Record ``calibration`` in the run ``folder`` (its ``conformal.safetensors``)."""
    folder.write_conformal(calibration.scores, _metadata(calibration))


def save_calibration(path: Path, calibration: Calibration) -> None:
    """``calibration`` as the safetensors file ``path`` (a bundle's)."""
    save_safetensors(path, calibration.scores, _metadata(calibration))


def _metadata(calibration: Calibration) -> dict[str, str]:
    return {METADATA_KEY: json.dumps(calibration.record.model_dump())}


def recorded_calibration(trained: Trained) -> Calibration | None:
    """The calibration a run folder recorded for ``trained``'s check, or its bundle's; None where
    there is none that fits it (nothing is computed)."""
    if trained.calibration is not None or (trained.origin / BUNDLE_FILE).is_file():
        return trained.calibration
    return _recorded(RunDir(trained.origin), trained)


def _recorded(folder: RunDir, trained: Trained) -> Calibration | None:
    held = folder.read_conformal()
    if held is None:
        return None
    path = folder.file(CONFORMAL_FILE)
    fix = "delete it: it is computed anew from the run's dev split"
    calibration = calibration_from(*held, where=str(path), fix=fix)
    reason = _unfit(calibration, trained)
    if reason is not None:
        logger.info("%s is not of the check read (%s): computed anew", path, reason)
        return None
    return calibration


def read_bundle_calibration(folder: Path, name: str, trained: Trained) -> Calibration:
    """The calibration file ``name`` of the bundle ``folder``, checked, and checked to be of its weights."""
    path = bundle_file(folder, name, "conformal")
    try:
        tensors, metadata = load_safetensors(path)
    except Exception as error:  # a torn or foreign file: name it
        raise PredictError(f"cannot read {path} ({error}); {RE_EXPORT}") from None
    calibration = calibration_from(tensors, metadata, where=str(path), fix=RE_EXPORT)
    reason = _unfit(calibration, trained)
    if reason is not None:
        raise PredictError(f"{path} is not of the bundle's weights ({reason}); {RE_EXPORT}")
    return calibration


def calibration_from(
    tensors: dict[str, Tensor], metadata: dict[str, str], *, where: str, fix: str
) -> Calibration:
    """A calibration file's content checked: its record, and one sorted, finite float64 tensor per
    score, each of one score per dev example; a one-line PredictError naming ``where`` and ``fix``."""
    try:
        record = CalibrationRecord.model_validate(json.loads(metadata[METADATA_KEY]))
    except (KeyError, TypeError, ValueError, ValidationError):
        raise PredictError(f"{where} does not say what its scores were computed from; {fix}") from None
    if record.format != CALIBRATION_FORMAT or set(tensors) != set(METHODS) or set(record.test) - set(METHODS):
        raise PredictError(f"{where} is not a calibration of format {CALIBRATION_FORMAT}; {fix}")
    for method, scores in tensors.items():
        problem = _scores_problem(scores, record.dev_examples)
        if problem is not None:
            raise PredictError(f"{where}: its {method} scores {problem}; {fix}")
    return Calibration(record, dict(tensors))


def _scores_problem(scores: Tensor, count: int) -> str | None:
    """What is wrong with one score's recorded tensor (None where nothing is)."""
    if scores.dtype != torch.float64 or scores.ndim != 1:
        return f"are {scores.dtype} of shape {list(scores.shape)}, not one float64 score per dev example"
    if len(scores) != count:
        return f"are {len(scores)}, not one per dev example ({count})"
    if not bool(torch.isfinite(scores).all()):
        return "are not all finite"
    if len(scores) > 1 and not bool((scores[1:] >= scores[:-1]).all()):
        return "are not sorted"
    return None


def _unfit(calibration: Calibration, trained: Trained) -> str | None:
    """Why ``calibration`` is not of ``trained``'s check (None where it is)."""
    record = calibration.record
    if record.step != trained.step:
        return f"computed at step {record.step}, the weights are of step {trained.step}"
    if record.temperature != trained.temperature:
        return f"computed with temperature {record.temperature}, the check's is {trained.temperature}"
    if record.weights != weights_digest(trained.weights):
        return "computed with other weights"
    return None


def _computed(predictor: Any, data_dir: str | None) -> Calibration:
    """The calibration of a run folder's check, from its dev and test splits."""
    trained = predictor.trained
    records = RunDir(trained.origin).read_metrics()
    if not any("dev_error" in record for record in records):
        raise PredictError(_no_dev(trained))
    dataset = load_run_data(data_config(trained, data_dir))
    if dataset.dev is None:
        raise PredictError(_no_dev(trained))
    dev, test = (split_inputs(trained.config, dataset, name) for name in ("dev", "test"))
    dev_logits, test_logits = predictor.logits(dev), predictor.logits(test)
    return calibrate(trained, dev_logits, dataset.dev.labels, test_logits, dataset.test.labels)


def _no_dev(trained: Trained) -> str:
    return (
        f"{trained.origin} fit no conformal threshold: it has no dev split to calibrate on; train "
        "it with one (data.files.dev_fraction above 0 for your own files) to get prediction sets"
    )


def _scale(temperature: float | None) -> float:
    return 1.0 if temperature is None else temperature


def set_note(calibration: Calibration, level: float, method: str) -> str:
    """One line on the sets: the level, the score, the calibration, and what the run's test split
    measured at this level with these sets (only a measured figure)."""
    threshold = calibration.threshold(level, method)
    record = calibration.record
    line = (
        f"prediction sets: {method.upper()} at level {level:g}, calibrated on the run's "
        f"{record.dev_examples} dev examples"
    )
    if math.isinf(threshold):
        line += " (too few for this level: every set holds every class)"
    else:
        line += f" (threshold {threshold:.6g})"
    measured = calibration.measured(level, method)
    if measured is None:
        return line + f"; the run's test split was measured at level {record.level:g} only"
    return (
        line + f"; on the run's test split these sets held the label for {100 * measured.coverage:.2f} % "
        f"of examples, {measured.set_size:.2f} classes a set"
    )


def set_coverage(sets: list[PredictionSet], labels: list[str]) -> str:
    """One line: the share of inputs whose set holds its own label, and the mean set size."""
    held = sum(label in found.classes for found, label in zip(sets, labels))
    size = sum(len(found.classes) for found in sets) / max(len(sets), 1)
    return (
        f"sets holding the inputs' own labels: {100.0 * held / max(len(sets), 1):.2f} %, "
        f"{size:.2f} classes a set"
    )
