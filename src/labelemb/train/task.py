"""Tasks: what differs between kinds of training data, so that one loop trains them all.

A task turns a batch of a split into the method's rows (``features`` ``(N, d)``, ``targets``
``(N,)``), evaluates a model on the dev and test splits, and names the metric that selects a
run's reported check. Classification is the first; sequence-to-sequence adds a second task
(decoder states flattened to rows, padding as ``ignore_index``; BLEU / ROUGE), not a second loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..data import Split
from .seed import epoch_permutation

#: Model inputs -> prediction scores ``(N, num_classes)``, in evaluation mode.
Predict = Callable[[Tensor], Tensor]


@dataclass
class Predictor:
    """A trained run seen by its task: called on model inputs it gives the method's logits.

    A task that needs more than logits (decoding a sequence) uses ``model`` and ``method``
    directly, inside :meth:`evaluating`.
    """

    network: nn.Module  # switched to evaluation mode while predicting
    model: nn.Module
    method: nn.Module
    prepare: Callable[[Tensor], Tensor] = lambda inputs: inputs
    autocast: torch.dtype | None = None

    def __call__(self, inputs: Tensor) -> Tensor:
        with self.evaluating(), self.precision(inputs.device):
            return self.method.logits(self.model(self.prepare(inputs)))

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The network in evaluation mode (dropout off), back in training mode after."""
        self.network.eval()
        try:
            yield
        finally:
            self.network.train()

    def precision(self, device: torch.device) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)


class Task(Protocol):
    #: The metrics each evaluation records, e.g. ``("dev_error", "test_error")``.
    metrics: tuple[str, ...]
    #: The metric whose best value selects the reported check, and whether lower is better.
    selection_metric: str
    lower_is_better: bool

    def epoch_order(self, split: Any, seed: int, epoch: int, batch_size: int) -> Tensor:
        """The order of ``split`` in ``epoch`` (a function of seed and epoch): each consecutive
        ``batch_size`` slice is one batch."""
        ...

    def batch(self, split: Any, index: Tensor) -> tuple[Any, Tensor]:
        """The model inputs and the targets of ``split[index]`` (``index`` may lead with a seed dimension)."""
        ...

    def rows(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's output and the targets as the method's rows."""
        ...

    def evaluate(self, predict: Predictor, dev: Any, test: Any) -> dict[str, float]:
        """The task's metrics of one model on the dev (if any) and test splits."""
        ...

    def evaluation_files(self) -> dict[str, str]:
        """Files the last :meth:`evaluate` produced for the run folder (name -> text): decoded output."""
        ...

    def summary_fields(self) -> dict[str, Any]:
        """What the task adds to a finished run's summary beyond its metrics."""
        ...

    def label_representation(
        self, predict: Predict, dev: Split | None, test: Split, num_classes: int
    ) -> tuple[Tensor, str]:
        """For a method that learns none: an (m x m) matrix read off the trained model, and its source."""
        ...


@dataclass
class Classification:
    """One label per example; the metric is the error rate in percent, lower is better."""

    eval_batch_size: int = 1000
    metrics: tuple[str, ...] = ("dev_error", "test_error")
    selection_metric: str = "dev_error"
    lower_is_better: bool = True

    def epoch_order(self, split: Split, seed: int, epoch: int, batch_size: int) -> Tensor:
        return epoch_permutation(seed, epoch, len(split))

    def evaluation_files(self) -> dict[str, str]:
        return {}

    def summary_fields(self) -> dict[str, Any]:
        return {}

    def batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        return split.images[index], split.labels[index]

    def rows(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        return features, targets

    def evaluate(self, predict: Predict, dev: Split | None, test: Split) -> dict[str, float]:
        results = {} if dev is None else {"dev_error": self.error_rate(predict, dev)}
        results["test_error"] = self.error_rate(predict, test)
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
        device = split.images.device
        sums = torch.zeros(num_classes, num_classes, device=device)
        counts = torch.zeros(num_classes, device=device)
        for start in range(0, len(split), self.eval_batch_size):
            probs = torch.softmax(predict(split.images[start : start + self.eval_batch_size]).float(), -1)
            labels = split.labels[start : start + self.eval_batch_size]
            sums.index_add_(0, labels, probs)
            counts.index_add_(0, labels, torch.ones_like(labels, dtype=counts.dtype))
        return (sums / counts.clamp(min=1)[:, None]).cpu()

    @torch.inference_mode()
    def error_rate(self, predict: Predict, split: Split) -> float:
        """Percentage of ``split`` whose argmax prediction is wrong."""
        wrong = torch.zeros((), dtype=torch.int64, device=split.images.device)
        for start in range(0, len(split), self.eval_batch_size):
            logits = predict(split.images[start : start + self.eval_batch_size])
            wrong += (logits.argmax(-1) != split.labels[start : start + self.eval_batch_size]).sum()
        return 100.0 * wrong.item() / len(split)
