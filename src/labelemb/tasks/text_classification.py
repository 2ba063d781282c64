"""Text classification: one label per text, judged by the error rate and the macro-averaged F1.

Training batches group texts of similar length (as the sequence-to-sequence task does) and are
cut to their longest text, so a batch of short texts costs little however long the longest text
of the data set is. Evaluation reads each split in length order, batch by batch, and reports the
error (%) and macro-F1 (%, over the classes): on imbalanced classes a model can have a low error
while failing the small classes, which macro-F1 shows. The test split's calibration (ECE, NLL, the
bins of a reliability diagram: :mod:`labelemb.tasks.calibration`) is recorded beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import Split
from ..data.base import epoch_permutation
from ..data.text.classes import TextClassDataset, TextClassSplit
from ..data.text.corpus import length_grouped_order
from ..metrics.figures import in_units
from ..rundir import VOCABULARY_FILE
from .base import (
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
    calibration_at_check,
    dev_calibration,
)
from .registry import register
from .scoring import TEST_ERROR, Scoring

#: The dev metrics that may select a run's reported check (``selection_metric``), and whether lower
#: is better for each.
SELECTION_METRICS = {"dev_error": True, "dev_macro_f1": False}


def macro_f1(predictions: Tensor, labels: Tensor, num_classes: int) -> float:
    """The macro-averaged F1 in percent: the mean over classes of ``2 TP_c / (predicted_c + actual_c)``.

    The mean runs over the classes that occur among the labels or the predictions (scikit-learn's
    ``f1_score(average="macro")`` with its default labels). A class neither present nor predicted
    has no F1 (0 / 0); counting it as 0 would hold a perfect model below 100 whenever a split
    lacks a class (the debian-sections test split has 51 of 53). A class predicted but absent, or
    present but never predicted, counts 0.
    """
    predictions, labels = predictions.long().flatten(), labels.long().flatten()
    actual = torch.bincount(labels, minlength=num_classes)
    predicted = torch.bincount(predictions, minlength=num_classes)
    hits = torch.bincount(labels[predictions == labels], minlength=num_classes)
    occurring = (actual + predicted) > 0
    if not bool(occurring.any()):
        return 0.0
    f1 = 2.0 * hits[occurring].double() / (actual + predicted)[occurring].double()
    return 100.0 * float(f1.mean())


@register("text_classification", serves="texts", options=(RecalibrationOptions,))
@dataclass
class TextClassification:
    """One label per text: error % and macro-F1 % on dev and test; the check is selected by dev
    error (lower is better) or, when the config's ``selection_metric`` is ``dev_macro_f1``, by dev
    macro-F1 (higher is better). The reported figure is the test error, with test macro-F1 beside it.
    """

    #: How messages name the data it trains on.
    data_kind: ClassVar[str] = "a text-classification data set (a text and a label per row)"
    #: What ``selection_metric`` may name.
    selectable: ClassVar[tuple[str, ...]] = tuple(SELECTION_METRICS)
    #: Kept in the summary at the selected check, beside the metrics.
    selected_fields: ClassVar[tuple[str, ...]] = (*CALIBRATION_FIELDS, *DEV_FIELDS, *MAP_DEV_FIELDS)
    #: The test error, with test macro-F1 beside it.
    scoring: ClassVar[Scoring] = replace(TEST_ERROR, reported=(("test_macro_f1", "test macro-F1 %"),))
    scorings: ClassVar[tuple[Scoring, ...]] = (scoring,)

    eval_batch_size: int = 1000
    #: The maps whose cross-fitted dev ECE a check that can be selected records (``recalibration:``).
    dev_maps: tuple[str, ...] = ()
    selection_metric: str = "dev_error"
    #: Whether the dev labels are noisy (see :class:`~labelemb.tasks.classification.Classification`).
    noisy_dev: bool = False
    #: How the data was read, for the summary: vocabulary size, the cut, texts cut per split.
    data_counts: dict[str, Any] = field(default_factory=dict)
    # Dev before test and macro-F1 before error: the summary lists them reversed, test error first.
    metrics: tuple[str, ...] = ("dev_macro_f1", "dev_error", "test_macro_f1", "test_error")

    def __post_init__(self) -> None:
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(
                f"text classification selects by {' or '.join(SELECTION_METRICS)}, "
                f"not {self.selection_metric!r} (selection_metric)"
            )

    @property
    def lower_is_better(self) -> bool:
        return SELECTION_METRICS[self.selection_metric]

    @classmethod
    def objective(cls, selection_metric: str | None) -> tuple[tuple[str, ...], bool]:
        """The dev score that selects a check (``selection_metric``, by default dev error) and
        whether higher is better: what tuning optimises."""
        key = selection_metric or "dev_error"
        return (key,), not SELECTION_METRICS[key]

    @classmethod
    def for_run(cls, config: Any, dataset: TextClassDataset) -> TextClassification:
        return cls(
            eval_batch_size=config.train.eval_batch_size,
            dev_maps=tuple(config.section(RecalibrationOptions).dev_maps),
            selection_metric=config.selection_metric or "dev_error",
            noisy_dev=dev_labels_noisy(dataset),
            data_counts={
                "vocabulary_size": len(dataset.vocabulary),
                "max_text_tokens": dataset.max_text_tokens,
                "cut_texts": dict(dataset.cut_texts),
            },
        )

    @staticmethod
    def method_problem(name: str) -> str | None:
        return rows_problem(name, "class", "a text classifier")

    def run_files(self, dataset: TextClassDataset) -> dict[str, str]:
        """The vocabulary, so that a run's word ids can be read without the data."""
        return {VOCABULARY_FILE: "".join(token + "\n" for token in dataset.vocabulary.tokens)}

    # ------------------------------------------------------------------ training

    # A split of a frozen backbone's features (a plain Split, (N, d)) has no lengths: its batches
    # are random and whole.

    def epoch_order(self, split: TextClassSplit | Split, seed: int, epoch: int, batch_size: int) -> Tensor:
        if not isinstance(split, TextClassSplit):
            return epoch_permutation(seed, epoch, len(split))
        return length_grouped_order(split.lengths.tolist(), batch_size, seed, epoch)

    def batch(self, split: TextClassSplit | Split, index: Tensor) -> tuple[Tensor, Tensor]:
        """Word ids of ``split[index]`` cut to the batch's longest text (features: as they are), and
        their labels."""
        if not isinstance(split, TextClassSplit):
            return split.inputs[index], split.labels[index]
        width = max(int(split.lengths[index].max()), 1)
        # The columns are cut before the rows are gathered.
        return split.inputs[:, :width][index], split.labels[index]

    def work(self, split: TextClassSplit | Split, index: Tensor) -> float:
        """Examples: the head's products, which the FLOP count covers, are one per text (the bag's
        look-ups, which grow with the words, are not counted)."""
        return float(index.numel())

    #: One row per example, as the backbone gives it.
    rows = None

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self,
        predict: Predict,
        dev: TextClassSplit | None,
        test: TextClassSplit,
        selectable: Selectable = always_selectable,
    ) -> dict[str, Any]:
        """Dev and test macro-F1 and error (%), and the calibration of the test predictions: raw,
        and scaled by a temperature fit on the dev split's logits where there is one (every
        figure only where the check can be selected, as :class:`Classification`'s; on noisy dev
        labels, a method's prediction of the noisy label judged against them where it makes one)."""
        results: dict[str, Any] = {}
        temperature = None
        can_be_selected = True
        for name, split in (("dev", dev), ("test", test)):
            if split is None:
                continue
            logits = self.split_logits(predict, split)
            view = noisy_dev_view(predict, self.noisy_dev) if name == "dev" else None
            predictions = (logits if view is None else view(logits)).argmax(-1)
            labels = split.labels.cpu()
            results[f"{name}_macro_f1"] = macro_f1(predictions, labels, logits.shape[-1])
            results.update(in_units({f"{name}_error": float((predictions != labels).double().mean())}))
            if name == "dev":
                can_be_selected = selectable(results)
                if can_be_selected:
                    temperature, dev_figures = dev_calibration(logits, labels, self.dev_maps)
                    results.update(dev_figures)
            else:
                calibration = calibration_at_check(temperature, can_be_selected)
                calibration.add(logits, labels)
                results.update(calibration.record(name))
        return results

    def evaluation_files(self) -> dict[str, str]:
        return {}

    def chance_levels(self, dev: TextClassSplit | None, test: TextClassSplit) -> dict[str, float]:
        """The error of always answering each split's most frequent class (:func:`chance_errors`)."""
        return chance_errors(dev, test)

    def summary_fields(self) -> dict[str, Any]:
        return {
            "metric": "test_error",
            "higher_is_better": False,
            "reported_metrics": ["test_error", "test_macro_f1"],
            "selection_metric": self.selection_metric,
            **self.data_counts,
        }

    @torch.inference_mode()
    def split_logits(self, predict: Predict, split: TextClassSplit) -> Tensor:
        """The logits ``(N, m)`` of every text of ``split`` (on the CPU, float32), in the split's order.

        Texts go through in order of length, each batch cut to its longest text.
        """
        if not isinstance(split, TextClassSplit):
            return torch.cat(
                [predict(rows).float().cpu() for rows in split.inputs.split(self.eval_batch_size)]
            )
        lengths = split.lengths.cpu()
        order = torch.argsort(lengths, stable=True)
        chunks = []
        for chunk in order.split(self.eval_batch_size):
            width = max(int(lengths[chunk[-1]]), 1)  # sorted: the last is the longest
            index = chunk.to(split.inputs.device)
            chunks.append(predict(split.inputs[:, :width][index]).float().cpu())
        logits = torch.cat(chunks)
        return logits[torch.argsort(order)]

    def label_representation(
        self, predict: Predict, dev: TextClassSplit | None, test: TextClassSplit, num_classes: int
    ) -> tuple[Tensor, str]:
        """Row c: the model's softmax averaged over the texts of class c of dev (or test, without one)."""
        split, name = (dev, "dev") if dev is not None else (test, "test")
        probabilities = torch.softmax(self.split_logits(predict, split), -1)
        labels = split.labels.cpu()
        sums = torch.zeros(num_classes, probabilities.shape[1]).index_add_(0, labels, probabilities)
        counts = torch.bincount(labels, minlength=num_classes).clamp(min=1)
        return sums / counts[:, None], f"mean softmax on {name}"
