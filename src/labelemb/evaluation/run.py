"""A finished run judged beyond its error, once, on its selected weights: does it know when it is wrong?

:func:`evaluate_run` reads a finished classification run (its selected check's weights and fitted
temperature, :func:`labelemb.load`), computes the logits of its dev and test splits and of the
out-of-distribution sets its config names (``ood:``), and records in the run's ``evaluation.json``
(:mod:`labelemb.metrics`):

- selective classification on test: AURC, AUGRC, risk at 80 % coverage, coverage at 5 % risk, for
  the max-softmax confidence raw, temperature-scaled and logit-normalised;
- post-hoc recalibration on test, each map fit on dev (vector scaling, Dirichlet calibration,
  histogram binning, isotonic regression; :mod:`labelemb.metrics.recalibration`): ECE, AdaECE,
  classwise ECE, NLL, Brier and the error after it; a map that cannot be fit on the dev split is
  left out, with a line saying why;
- split-conformal sets at 90 % target coverage, calibrated on dev: test coverage and mean set size
  (THR, APS, RAPS); the dev scores themselves go to the run's ``conformal.safetensors``, the
  calibration of ``labelemb predict --sets`` (:mod:`.sets`);
- out-of-distribution detection of each set against the test split: AUROC, AUPR-in / -out and
  FPR at 95 % TPR for the MSP, max-logit, energy and entropy scores; and selective classification
  of the test split and the set together, an accepted OOD input counting as an error (SCOD,
  :mod:`labelemb.metrics.scod`): AURC and AUGRC of each score, the MSP's risk-coverage curve;
- where the config names ``disputed_test_labels``: where the test rows whose labels people
  disputed rank among the least confident predictions (:mod:`.disputed`);
- for a run trained on noisy labels: memorisation and the finding of the wrong labels.

The record says what it was computed from (the code, the selected check, digests of its weights and
of the dev and test data, each OOD set's source and a digest of its content); a record that still
fits is read, not computed again, and one that does not is computed anew, with a line saying why.
Training never runs here.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..assembly import data_request, freeze_features, load_run_data
from ..assembly.plan import features_of
from ..config import OodSetConfig
from ..data import Dataset, Split
from ..data.registry import DataRequest
from ..metrics.conformal import conformal_figures
from ..metrics.figures import PERCENT_FROM_FORMAT, computed_figures
from ..metrics.noise import detection_figures, disputed_figures, memorisation_figures
from ..metrics.ood import ood_figures
from ..metrics.recalibration import MAPS, recalibration_figures
from ..metrics.scod import scod_figures, scod_risk_curve
from ..metrics.selective import choose_norm_p, msp_risk_curve, selective_figures
from ..predict.loading import load, load_single_label
from ..predict.predictor import Predictor
from ..predict.reading import data_config
from ..predict.sets import CONFORMAL_COVERAGE, calibrate, calibration_for, write_calibration
from ..predict.source import PredictError, weights_digest
from ..rundir import RunDir
from ..tasks import build_task
from ..version import code_version
from .disputed import read_disputed
from .ood import OodInputs, read_ood_set

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "dev", "test")

#: What ``evaluation.json`` is; a record of another format is computed anew (format 1 had no
#: recalibration maps and no SCOD figures; formats 1 and 2 stored most shares as fractions, read
#: in percent by :func:`~labelemb.metrics.figures.evaluation_in_percent`).
EVALUATION_FORMAT = PERCENT_FROM_FORMAT
#: The seed of the randomised APS and RAPS sets.
CONFORMAL_SEED = 0


def evaluate_run(
    path: str | Path,
    *,
    ood: Sequence[OodSetConfig] | None = None,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str | torch.device = "cpu",
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The run at ``path`` judged on its selected weights (see the module docstring); its record,
    written to (or read from) the run's ``evaluation.json``.

    ``ood``: the out-of-distribution sets (None: those its config names); ``data_dir``: where its
    data files are, if not where the run found them; ``refresh``: compute anew even a record that
    still fits; ``on_step``: called with the name of each part computed (``test split``, ``dev
    split``, ``conformal sets``, ``OOD mnist``), for a progress display. A :class:`PredictError`
    for a run that is not a finished classifier.
    """
    step = on_step or (lambda name: None)
    folder, predictor = load_single_label(path, device, "evaluate")
    trained = predictor.trained
    sets = list(trained.config.ood if ood is None else ood)
    scores = RunScores(predictor, data_dir)
    stamp = _stamp(trained.step, trained.weights, scores.data_digest())
    recorded = folder.read_evaluation()
    reason = "asked to" if refresh else _unfit(recorded, stamp)
    request = run_request(trained, data_dir)
    ood_inputs = [read_ood_set(entry, trained, request) for entry in sets]
    named = trained.config.disputed_test_labels
    disputed = None if named is None else read_disputed(named, request, len(scores.test))
    if (
        disputed is not None
        and reason is None
        and recorded.get("disputed", {}).get("digest") != disputed.digest
    ):
        reason = "its disputed test labels are not the ones the config names"
    if reason is None and not any(_ood_unfit(recorded, inputs) for inputs in ood_inputs):
        if "conformal_level" in recorded.get("test", {}):  # recorded before conformal.safetensors
            calibration_for(predictor, data_dir)
        return recorded
    if recorded is not None and reason is not None:
        logger.info("evaluating %s anew: %s", folder.path, reason)
    test_logits = scores.of_split(scores.test)
    step("test split")
    dev_logits = None if scores.dev is None else scores.of_split(scores.dev)
    step("dev split")
    record = {**stamp, "temperature": predictor.temperature, "test": {}, "ood": {}}
    record["test"] = _test_figures(scores, test_logits, dev_logits)
    if dev_logits is not None and "conformal_level" in record["test"]:
        # The dev scores `labelemb predict --sets` calibrates with.
        dev_labels, test_labels = scores.dev.labels, scores.test.labels
        write_calibration(folder, calibrate(trained, dev_logits, dev_labels, test_logits, test_labels))
        step("conformal sets")
    for inputs in ood_inputs:
        try:
            record["ood"][inputs.label] = _ood_record(scores, test_logits, inputs)
        except ValueError as error:  # DataError, PredictError: inputs the network cannot read
            raise PredictError(f"ood set {inputs.label!r} ({inputs.source}): {error}") from None
        step(f"OOD {inputs.label}")
    if disputed is not None:
        figures = disputed_figures(test_logits, disputed.rows)
        record["disputed"] = {
            **figures,
            "count": len(disputed.rows),
            "source": disputed.source,
            "digest": disputed.digest,
        }
    if scores.noise is not None:
        record["noise"] = _noise_record(scores, folder, device)
        step("noisy training labels")
    folder.write_evaluation(record)
    return record


class RunScores:
    """The logits of a run's selected weights: of its own dev and test splits, read as the run read
    them, and of other inputs. A run on a frozen backbone is scored by its head on the features in
    the feature cache (those its own evaluation read: the same numbers, without running the
    backbone again); other images go through the backbone into that cache too."""

    def __init__(self, predictor: Predictor, data_dir: str | None) -> None:
        self.predictor = predictor
        config = data_config(predictor.trained, data_dir)
        dataset = load_run_data(config)
        #: The test split's inputs as the data set holds them (images, not a frozen run's features).
        self.test_inputs = dataset.test.inputs
        self.frozen: tuple[Any, Any] | None = None
        if predictor.trained.frozen:
            task = build_task(config, dataset)
            self.frozen = (config, task)
            dataset = scored_features(config, dataset, task, predictor.device)
        self.class_names = list(dataset.class_names)
        self.dev, self.test = dataset.dev, dataset.test
        #: Where the run trained on noisy labels: its training split and their record.
        self.noise = getattr(dataset, "noise", None)
        self.train = dataset.train if self.noise is not None else None

    def data_digest(self) -> str:
        """A SHA-256 of the dev and test splits as scored (inputs, lengths, labels): a record of other
        data under the same file names is not this run's evaluation any more."""
        hasher = hashlib.sha256()
        for name, split in (("dev", self.dev), ("test", self.test)):
            hasher.update(name.encode())
            for tensor in (split.inputs, getattr(split, "lengths", None), split.labels) if split else ():
                if tensor is not None:
                    hasher.update(str((tuple(tensor.shape), tensor.dtype)).encode())
                    hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        return hasher.hexdigest()

    def of_split(self, split: Any, predictor: Predictor | None = None) -> Tensor:
        """The logits of one of the run's splits (by ``predictor``: another checkpoint of the run)."""
        predictor = predictor or self.predictor
        return self._head(split.inputs, predictor) if self.frozen else predictor.logits(split)

    def of_inputs(self, items: Any) -> Tensor:
        """The logits of other inputs (what :meth:`Predictor.logits` takes)."""
        if self.frozen is None or not isinstance(items, Tensor):
            return self.predictor.logits(items)

        config, task = self.frozen
        split = Split(items, torch.zeros(len(items), dtype=torch.int64))
        images = Dataset("ood", split, None, split, self.class_names)
        return self._head(freeze_features(config, images, task, self.predictor.device).test.inputs)

    @torch.inference_mode()
    def _head(self, features: Tensor, predictor: Predictor | None = None) -> Tensor:
        """The classifier's head (dense layer, method) on ``features``, as evaluation runs it."""
        predictor = predictor or self.predictor
        classifier, device = predictor.model, predictor.device
        autocast = predictor.autocast
        parts = []
        for rows in features.split(predictor.batch_size):
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                parts.append(classifier.method.logits(classifier.model(rows.to(device))).float().cpu())
        return torch.cat(parts) if parts else torch.zeros((0, len(self.class_names)))


#: The frozen features scored last: (the data set they were made from, what made them, the
#: features). The runs of a comparison (seeds, methods) read one data set through one backbone.
_SCORED: list[tuple[Any, str, Any]] = []


def scored_features(config: Any, dataset: Any, task: Any, device: torch.device) -> Any:
    """``dataset`` seen through the frozen backbone of ``config``
    (:func:`~labelemb.assembly.freeze_features`), made once for every run that reads the same
    data set (the very splits :func:`~labelemb.assembly.load_run_data` handed out, which a changed
    file or option replaces) through the same backbone on the same device."""
    made_by = json.dumps(
        {**dataclasses.asdict(features_of(config)), "progress": None, "device": str(device)},
        sort_keys=True,
        default=str,
    )
    for source, key, features in _SCORED:
        if key == made_by and all(getattr(source, name) is getattr(dataset, name) for name in SPLIT_NAMES):
            return copy.copy(features)
    features = freeze_features(config, dataset, task, device)
    # One kept: a TF-IDF's entries of every training text are large.
    _SCORED[:] = [(dataset, made_by, features)]
    return features


def _stamp(step: int, weights: dict[str, Tensor], data: str) -> dict[str, Any]:
    """What a record is computed from: this code, the selected check, digests of its weights and of
    the dev and test data it scored."""
    return {
        "format": EVALUATION_FORMAT,
        "labelemb": code_version(),
        "selected_step": step,
        "weights": weights_digest(weights),
        "data": data,
    }


def _unfit(recorded: dict[str, Any] | None, stamp: dict[str, Any]) -> str | None:
    """Why ``recorded`` does not fit ``stamp`` (None where it does)."""
    if recorded is None:
        return "it has no evaluation yet"
    for key, value in stamp.items():
        if recorded.get(key) != value:
            return f"its evaluation was computed with another {key} ({recorded.get(key)!r}, now {value!r})"
    return None


def _ood_unfit(recorded: dict[str, Any], inputs: OodInputs) -> bool:
    held = recorded.get("ood", {}).get(inputs.label)
    return held is None or held.get("digest") != inputs.digest


def run_request(trained: Any, data_dir: str | None) -> DataRequest:
    """Where the run's data files (and OOD files) are looked for: as the run looked for them."""
    return data_request(data_config(trained, data_dir))


def _test_figures(scores: RunScores, test_logits: Tensor, dev_logits: Tensor | None) -> dict[str, Any]:
    """Selective classification on test (its figures, and the risk-coverage curve of the raw
    max-softmax confidence at 101 coverages, :func:`~labelemb.metrics.selective.msp_risk_curve`),
    and conformal sets calibrated on dev (where there is one)."""
    predictor, dev, test_labels = scores.predictor, scores.dev, scores.test.labels
    temperature = predictor.temperature
    dev_labels = None if dev is None else dev.labels
    # Xia et al.'s normalisation is fit on held-out logits: the dev split's, never test.
    norm_p = None if dev_logits is None else choose_norm_p(dev_logits, dev_labels)
    figures = selective_figures(test_logits, test_labels, temperature=temperature, norm_p=norm_p)
    if dev_logits is not None:
        # APS and RAPS randomised as their papers' (a fixed seed: the same sets every time); without
        # it a confident network's sets hold nearly every class to reach the dev scores' quantile.
        figures.update(
            conformal_figures(
                dev_logits,
                dev_labels,
                test_logits,
                test_labels,
                CONFORMAL_COVERAGE,
                temperature=temperature,
                randomized=True,
                seed=CONFORMAL_SEED,
            )
        )
        figures.update(mapped_figures(dev_logits, dev_labels, test_logits, test_labels))
    # The figures declared with a function of their own (none built in: an extension's).
    figures.update(computed_figures(test_logits, test_labels))
    return {**figures, **msp_risk_curve(test_logits, test_labels)}


def mapped_figures(
    dev_logits: Tensor, dev_labels: Tensor, test_logits: Tensor, test_labels: Tensor
) -> dict[str, float]:
    """Each recalibration map fit on dev and judged on test
    (:func:`~labelemb.metrics.recalibration.recalibration_figures`); a map that cannot be fit on
    this dev split is left out, with one line saying why (its cells are then '-')."""
    figures: dict[str, float] = {}
    for name in MAPS:
        try:
            figures.update(recalibration_figures(dev_logits, dev_labels, test_logits, test_labels, [name]))
        except ValueError as error:
            logger.warning("no %s recalibration: %s", name, error)
    return figures


def _noise_record(scores: RunScores, folder: RunDir, device: str | torch.device) -> dict[str, Any]:
    """What the noisy training labels did, on the training split: memorisation and how well the
    loss finds the wrong labels (:mod:`labelemb.metrics.noise`), at the selected weights and at the
    last ones; and the realised noise."""
    noise, train = scores.noise, scores.train
    clean = noise.clean["train"]
    record: dict[str, Any] = {"realised_rate": noise.rate("train", train.labels)}
    last = load(folder.path, checkpoint="last", device=device)
    for name, predictor in (("selected", scores.predictor), ("final", last)):
        logits = scores.of_split(train, predictor)
        record[name] = {
            **memorisation_figures(logits, train.labels, clean),
            **detection_figures(logits, train.labels, clean),
        }
    return record


def _ood_record(scores: RunScores, test_logits: Tensor, inputs: OodInputs) -> dict[str, Any]:
    out_logits = scores.of_inputs(inputs.items)
    labels = scores.test.labels
    return {
        "source": inputs.source,
        "examples": inputs.count,
        "digest": inputs.digest,
        "figures": {**ood_figures(test_logits, out_logits), **scod_figures(test_logits, labels, out_logits)},
        **scod_risk_curve(test_logits, labels, out_logits),
    }
