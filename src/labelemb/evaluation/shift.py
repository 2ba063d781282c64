"""A finished run under shift: its selected weights scored on corrupted copies of its test split.

:func:`shift_run` reads a finished classification run (:func:`labelemb.load`), corrupts its test
split with each condition asked (:mod:`labelemb.data.corruptions`: a corruption at a severity) and
records in the run's ``shift.json``, per condition and for the clean split: the error, the ECE raw
and after temperature scaling with the temperature fitted on the clean dev split (shift is where a
clean fit can fail), the NLL and the AURC of the max-softmax confidence.

A record says what it was computed from (the code, the selected check, digests of the weights and
of the clean data); each condition also records its corruption's definition digest and the seed,
so a changed corruption or other data makes a new result, and a condition asked again that still
fits is read back, not computed again. Images are corrupted once per condition and kept in the
cache (:mod:`.corrupted`); texts are read from the run's test file and perturbed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.corruptions import perturb_texts
from ..data.corruptions.suites import Condition, conditions
from ..data.files.options import FilesOptions
from ..metrics.split import split_figures
from ..predict.loading import load_single_label
from ..predict.source import PredictError, weights_digest
from ..progress import Steps
from ..version import code_version
from .corrupted import corrupted_images, corrupted_key, making_note, test_texts
from .run import RunScores, run_request

logger = logging.getLogger(__name__)

#: What ``shift.json`` is; a record of another format is computed anew.
SHIFT_FORMAT = 1
#: The seed of every corruption's randomness: the same corrupted set for every run of a data set.
SHIFT_SEED = 0
#: What a run is shifted by when neither its config nor the command names conditions.
DEFAULT_SHIFT = {"images": ("mnist-c", "severities"), "texts": ("text",)}


def shift_run(
    path: str | Path,
    *,
    corruptions: Sequence[str] | None = None,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The run at ``path`` under shift (see the module docstring); its record, written to (or read
    from) the run's ``shift.json``.

    ``corruptions``: entries as a config's ``shift:`` holds them (None: its config's, or
    :data:`DEFAULT_SHIFT`); ``data_dir``: where its data files are, if not where the run found
    them; ``refresh``: compute anew even what still fits; ``on_step``: called with each condition
    scored (its corrupted copy built first where the cache lacks it), else with ``progress`` a
    display of its own (:class:`~labelemb.progress.Steps`). A :class:`PredictError` for a run that
    is not a finished classifier or has no saved weights.
    """
    folder, predictor = load_single_label(path, device, "shift")
    reads = predictor.reads
    trained = predictor.trained
    entries = corruptions if corruptions is not None else (trained.config.shift or DEFAULT_SHIFT[reads])
    try:
        asked = conditions(entries, reads)
    except ValueError as error:
        raise PredictError(str(error)) from None
    scores = RunScores(predictor, data_dir)
    stamp = {
        "format": SHIFT_FORMAT,
        "labelemb": code_version(),
        "selected_step": trained.step,
        "weights": weights_digest(trained.weights),
        "data": scores.data_digest(),
    }
    recorded = folder.read_shift() or {}
    fits = not refresh and all(recorded.get(k) == v for k, v in stamp.items())
    held = dict(recorded.get("conditions", {})) if fits else {}
    missing = [c for c in asked if not _condition_fits(held.get(c.key), c)]
    if not missing and fits and "clean" in recorded:
        return recorded
    if recorded and not fits:
        logger.info("shifting %s anew: its record was computed from other code, weights or data", folder.path)
    temperature = predictor.temperature
    labels = scores.test.labels
    record = {**stamp, "temperature": temperature, "seed": SHIFT_SEED}
    record["clean"] = shift_figures(scores.of_split(scores.test), labels, temperature)
    shifted = _ShiftedInputs(scores, trained, run_request(trained, data_dir))
    note = shifted.making_note(missing)
    if note is not None:
        logger.info("shifting %s: %s", folder.path, note)  # the one-time cost, on disk and in time
    shown = progress and on_step is None  # a caller's own display counts the steps otherwise
    with Steps(f"shift {folder.path}", len(missing), "condition", bar=shown, lines=shown) as steps:
        for condition in missing:
            held[condition.key] = _condition_record(condition, shifted, temperature)
            (on_step or steps.step)(condition.key)
    record["conditions"] = held
    folder.write_shift(record)
    return record


def _condition_record(
    condition: Condition, shifted: _ShiftedInputs, temperature: float | None
) -> dict[str, Any]:
    """What ``shift.json`` holds of one condition: what it is, and the run's figures under it."""
    logits, condition_labels = shifted.logits(condition)
    return {
        "corruption": condition.name,
        "severity": condition.severity,
        "definition": condition.corruption.definition(),
        "seed": SHIFT_SEED,
        **shift_figures(logits, condition_labels, temperature),
    }


def shift_figures(logits: Tensor, labels: Tensor, temperature: float | None) -> dict[str, float]:
    """Error (%), ECE raw and scaled (%), NLL raw and scaled, and AURC (%) of ``logits``, scaled by
    the ``temperature`` fit on the clean dev split (:func:`~labelemb.metrics.split.split_figures`)."""
    measured = split_figures(logits.float(), labels, temperature)
    assert measured is not None  # only a fit on these logits finds nothing
    return measured[1]


def _condition_fits(held: dict[str, Any] | None, condition: Condition) -> bool:
    return (
        held is not None
        and held.get("definition") == condition.corruption.definition()
        and held.get("seed") == SHIFT_SEED
    )


class _ShiftedInputs:
    """The logits of a run's test split under each condition: images corrupted (and kept in the
    cache), texts read from its test file and perturbed."""

    def __init__(self, scores: RunScores, trained: Any, request: Any) -> None:
        self.scores, self.trained, self.request = scores, trained, request
        self._texts: tuple[list[str], Tensor] | None = None
        self._keys: dict[Condition, str] = {}
        self.cache_dir = trained.config.section(FilesOptions).cache_dir

    def making_note(self, conditions: list[Condition]) -> str | None:
        """What making the corrupted copies of ``conditions`` the cache lacks will leave on disk
        (:func:`.corrupted.making_note`); None for texts, or where the cache holds them all."""
        if self.scores.predictor.reads == "texts":
            return None
        images = self.scores.test_inputs
        self._keys = {c: corrupted_key(images, c, SHIFT_SEED) for c in conditions}  # hashed once
        return making_note(images, self._keys, self.cache_dir)

    def logits(self, condition: Condition) -> tuple[Tensor, Tensor]:
        if self.scores.predictor.reads == "texts":
            texts, labels = self._clean_texts()
            perturbed = perturb_texts(texts, condition.name, condition.severity, seed=SHIFT_SEED)
            return self.scores.of_inputs(perturbed), labels
        key = self._keys.get(condition)
        corrupted = corrupted_images(self.scores.test_inputs, condition, SHIFT_SEED, self.cache_dir, key=key)
        return self.scores.of_inputs(corrupted), self.scores.test.labels

    def _clean_texts(self) -> tuple[list[str], Tensor]:
        if self._texts is None:
            texts, labels = test_texts(self.trained, self.request, self.scores.class_names)
            if len(texts) != len(self.scores.test):
                raise PredictError(
                    f"{self.trained.origin}'s test file holds {len(texts)} texts, its test split "
                    f"{len(self.scores.test)}: shift a run whose test split is its whole test file"
                )
            self._texts = texts, labels
        return self._texts
