"""Tasks: what differs between kinds of training data, so that one loop trains them all.

A task turns a batch of a split into the method's rows (``features`` ``(N, d)``, ``targets``
``(N,)``), evaluates a model on the dev and test splits, and names the metric that selects a
run's reported check. Classification is the first; sequence-to-sequence adds a second task
(decoder states flattened to rows, padding as ``ignore_index``; BLEU / ROUGE), not a second loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..data import Split

#: Model inputs -> prediction scores ``(N, num_classes)``, in evaluation mode.
Predict = Callable[[Tensor], Tensor]


class Task(Protocol):
    #: The metrics each evaluation records, e.g. ``("dev_error", "test_error")``.
    metrics: tuple[str, ...]
    #: The metric whose best value selects the reported check, and whether lower is better.
    selection_metric: str
    lower_is_better: bool

    def batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        """The model inputs and the targets of ``split[index]`` (``index`` may lead with a seed dimension)."""
        ...

    def rows(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's output and the targets as the method's rows."""
        ...

    def evaluate(self, predict: Predict, dev: Split | None, test: Split) -> dict[str, float]:
        """The task's metrics of one model on the dev (if any) and test splits."""
        ...


@dataclass
class Classification:
    """One label per example; the metric is the error rate in percent, lower is better."""

    eval_batch_size: int = 1000
    metrics: tuple[str, ...] = ("dev_error", "test_error")
    selection_metric: str = "dev_error"
    lower_is_better: bool = True

    def batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        return split.images[index], split.labels[index]

    def rows(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        return features, targets

    def evaluate(self, predict: Predict, dev: Split | None, test: Split) -> dict[str, float]:
        results = {} if dev is None else {"dev_error": self.error_rate(predict, dev)}
        results["test_error"] = self.error_rate(predict, test)
        return results

    @torch.inference_mode()
    def error_rate(self, predict: Predict, split: Split) -> float:
        """Percentage of ``split`` whose argmax prediction is wrong."""
        wrong = torch.zeros((), dtype=torch.int64, device=split.images.device)
        for start in range(0, len(split), self.eval_batch_size):
            logits = predict(split.images[start : start + self.eval_batch_size])
            wrong += (logits.argmax(-1) != split.labels[start : start + self.eval_batch_size]).sum()
        return 100.0 * wrong.item() / len(split)
