"""Classification: one label per example, judged by the error rate; the task of the image data sets.

Each check also records the calibration of the test predictions (:mod:`labelemb.tasks.calibration`):
ECE, NLL and the bins of a reliability diagram, from the same logits as the test error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import Split
from ..data.base import as_float_images, epoch_permutation
from ..metrics.figures import percent_of
from .base import (
    NoisyView,
    Predict,
    Selectable,
    always_selectable,
    chance_errors,
    dev_labels_noisy,
    noisy_dev_view,
    rows_problem,
)
from .calibration import (
    CALIBRATION_FIELDS,
    DEV_FIELDS,
    MAP_DEV_FIELDS,
    RecalibrationOptions,
    ScaledCalibration,
    calibration_at_check,
    dev_calibration,
)
from .registry import register
from .scoring import TEST_ERROR, Scoring


@register("classification", serves="images", options=(RecalibrationOptions,))
@dataclass
class Classification:
    """One label per example; the metric is the error rate in percent, lower is better."""

    #: How messages name the data it trains on.
    data_kind: ClassVar[str] = "an image data set"
    #: What ``selection_metric`` may name.
    selectable: ClassVar[tuple[str, ...]] = ("dev_error",)
    #: Kept in the summary at the selected check, beside the metrics.
    selected_fields: ClassVar[tuple[str, ...]] = (*CALIBRATION_FIELDS, *DEV_FIELDS, *MAP_DEV_FIELDS)
    #: The figures it can be judged by, and the one it is.
    scorings: ClassVar[tuple[Scoring, ...]] = (TEST_ERROR,)
    scoring: ClassVar[Scoring] = TEST_ERROR

    eval_batch_size: int = 1000
    #: The maps whose cross-fitted dev ECE a check that can be selected records (``recalibration:``).
    dev_maps: tuple[str, ...] = ()
    #: Whether the dev labels are noisy: then a method that predicts noisy labels apart from the
    #: clean class is judged on dev by that prediction (:func:`~labelemb.tasks.base.noisy_dev_view`).
    noisy_dev: bool = False
    metrics: tuple[str, ...] = ("dev_error", "test_error")
    selection_metric: str = "dev_error"
    lower_is_better: bool = True

    @classmethod
    def for_run(cls, config: Any, dataset: Any) -> Classification:
        maps = tuple(config.section(RecalibrationOptions).dev_maps)
        batch_size = config.train.eval_batch_size
        return cls(eval_batch_size=batch_size, dev_maps=maps, noisy_dev=dev_labels_noisy(dataset))

    @staticmethod
    def method_problem(name: str) -> str | None:
        return rows_problem(name, "class", "a classifier")

    def run_files(self, dataset: Any) -> dict[str, str]:
        return {}

    def epoch_order(self, split: Split, seed: int, epoch: int, batch_size: int) -> Tensor:
        return epoch_permutation(seed, epoch, len(split))

    def evaluation_files(self) -> dict[str, str]:
        return {}

    def chance_levels(self, dev: Split | None, test: Split) -> dict[str, float]:
        """The error of always answering each split's most frequent class (:func:`chance_errors`)."""
        return chance_errors(dev, test)

    def summary_fields(self) -> dict[str, Any]:
        return {}

    def batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        return as_float_images(split.inputs[index]), split.labels[index]

    def work(self, split: Split, index: Tensor) -> float:
        """Every example of a split costs the same: the work is their count."""
        return float(index.numel())

    #: One row per example, as the backbone gives it.
    rows = None

    def evaluate(
        self, predict: Predict, dev: Split | None, test: Split, selectable: Selectable = always_selectable
    ) -> dict[str, Any]:
        """Dev and test error (%), and the calibration of the test predictions: raw, and scaled by
        a temperature fit on the dev split's logits where there is one. Where the check cannot be
        selected (its dev error beats no earlier check's), only the raw top-probability test
        figures: no temperature, no dev figures
        (:func:`~labelemb.tasks.calibration.calibration_at_check`). On noisy dev labels, a method
        that predicts noisy labels has its dev error judged by that prediction; its temperature
        is still fit to its logits, the clean-class prediction the test figures judge."""
        results: dict[str, Any] = {}
        temperature = None
        dev_logits: list[Tensor] = []
        if dev is not None:
            view = noisy_dev_view(predict, self.noisy_dev)
            results["dev_error"] = self.error_rate(predict, dev, keep=dev_logits, view=view)
        can_be_selected = selectable(results)
        if dev is not None and can_be_selected:
            temperature, dev_figures = dev_calibration(torch.cat(dev_logits), dev.labels, self.dev_maps)
            results.update(dev_figures)
        calibration = calibration_at_check(temperature, can_be_selected)
        results["test_error"] = self.error_rate(predict, test, calibration)
        results.update(calibration.record("test"))
        return results

    def label_representation(
        self, predict: Predict, dev: Split | None, test: Split, num_classes: int
    ) -> tuple[Tensor, str]:
        split, name = (dev, "dev") if dev is not None else (test, "test")
        return self.class_mean_softmax(predict, split, num_classes), f"mean softmax on {name}"

    @torch.inference_mode()
    def class_mean_softmax(self, predict: Predict, split: Split, num_classes: int) -> Tensor:
        """Row c: the model's softmax averaged over the examples of class c in ``split`` (on the CPU).

        This gives methods that learn no label representation (onehot, the smoothing methods) a
        matrix comparable to the soft-label tables of label_embedding and OLS: what the trained
        network predicts, on average, for an example of class c.
        """
        device = split.inputs.device
        sums = torch.zeros(num_classes, num_classes, device=device)
        counts = torch.zeros(num_classes, device=device)
        for start in range(0, len(split), self.eval_batch_size):
            inputs = as_float_images(split.inputs[start : start + self.eval_batch_size])
            probs = torch.softmax(predict(inputs).float(), -1)
            labels = split.labels[start : start + self.eval_batch_size]
            sums.index_add_(0, labels, probs)
            counts.index_add_(0, labels, torch.ones_like(labels, dtype=counts.dtype))
        return (sums / counts.clamp(min=1)[:, None]).cpu()

    def split_logits(self, predict: Predict, split: Split) -> Tensor:
        """The logits ``(N, m)`` of every example of ``split`` (on the CPU, float32), in its order:
        what :meth:`error_rate` keeps, for a method that reads the dev split's predictions."""
        kept: list[Tensor] = []
        self.error_rate(predict, split, keep=kept)
        return torch.cat(kept)

    @torch.inference_mode()
    def error_rate(
        self,
        predict: Predict,
        split: Split,
        calibration: ScaledCalibration | None = None,
        keep: list[Tensor] | None = None,
        view: NoisyView | None = None,
    ) -> float:
        """Percentage of ``split`` whose argmax prediction is wrong (the argmax of ``view`` of the
        logits, where given); each batch's predictions are also added to ``calibration`` and their
        logits (float32, on the CPU) to ``keep``, if given (one pass over the split for all)."""
        wrong = torch.zeros((), dtype=torch.int64, device=split.inputs.device)
        for start in range(0, len(split), self.eval_batch_size):
            logits = predict(as_float_images(split.inputs[start : start + self.eval_batch_size]))
            labels = split.labels[start : start + self.eval_batch_size]
            judged = logits if view is None else view(logits)
            wrong += (judged.argmax(-1) != labels).sum()
            if calibration is not None:
                calibration.add(logits, labels)
            if keep is not None:
                keep.append(logits.float().cpu())
        return percent_of(wrong.item(), len(split))
