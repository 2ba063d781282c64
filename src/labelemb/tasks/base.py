"""What a task owes the loop: the protocol every task implements, and how a trained run is seen.

A task turns a batch of a split into the method's rows (``features`` ``(N, d)``, ``targets``
``(N,)``), evaluates a model on the dev and test splits, and names the metric that selects a
run's reported check. Classification is one task; sequence-to-sequence another (decoder states
flattened to rows; BLEU / ROUGE), not a second loop.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from .. import methods
from ..data import Split
from ..methods.abilities import PredictsNoisyLabels
from ..metrics.figures import in_units
from .scoring import Scoring

#: Model inputs -> prediction scores ``(N, num_classes)``, in evaluation mode.
Predict = Callable[[Tensor], Tensor]

#: Given a check's dev figures, whether the check can still become its run's selected one
#: (:func:`labelemb.training.results.selectable_check`).
Selectable = Callable[[Mapping[str, Any]], bool]


#: A method's logits -> its log-probabilities of the noisy labels ``(N, m)``
#: (:class:`~labelemb.methods.abilities.PredictsNoisyLabels`).
NoisyView = Callable[[Tensor], Tensor]


def dev_labels_noisy(dataset: Any) -> bool:
    """Whether ``dataset``'s dev labels are noisy ones (``noise:`` with its default ``dev: noisy``,
    or a data set that carries noisy labels beside clean ones for dev too)."""
    noise = getattr(dataset, "noise", None)
    return noise is not None and "dev" in noise.clean


def noisy_dev_view(predict: Predict, noisy_dev: bool) -> NoisyView | None:
    """How the dev error reads ``predict``'s logits: where the dev labels are noisy and the
    predictor's method predicts noisy labels apart from clean classes, its noisy-label
    log-probabilities (forward correction's ``log(T^T p)``: what the noisy labels can judge); else
    None, the logits as they are."""
    method = getattr(predict, "method", None)
    if noisy_dev and isinstance(method, PredictsNoisyLabels):
        return method.noisy_label_logits
    return None


def always_selectable(record: Mapping[str, Any]) -> bool:
    """Every check may be selected (there is no earlier check, or the last one is selected)."""
    return True


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


def rows_problem(method: str, rows: str, output_of: str) -> str | None:
    """Why method ``method`` cannot be the output layer for ``rows`` (``"class"``, ``"token"``:
    :data:`labelemb.methods.base.ROW_KINDS`) of ``output_of`` (``a sequence model``), from the
    method's own traits; None if it can."""
    reason = methods.why_not_serving(method, rows)
    if reason is None:
        return None
    suitable = methods.serving(rows)
    return (
        f"method {method!r} cannot be the output layer of {output_of}: {reason}. "
        f"Use {', '.join(suitable[:-1])} or {suitable[-1]}"
    )


class Task(Protocol):
    """A kind of training data the loop can train on: chosen by what a data set yields
    (:func:`labelemb.tasks.build_task`); registered with :func:`labelemb.tasks.register`.

    A task whose rows are a split's examples may also offer ``split_logits(predict, split)``, the
    logits ``(N, m)`` of every example of ``split`` in its order, on the CPU: what a method that
    reads the dev split's predictions is handed (:attr:`labelemb.methods.Method.reads_dev`).
    """

    #: The metrics each evaluation records, e.g. ``("dev_error", "test_error")``.
    metrics: tuple[str, ...]
    #: The metric whose best value selects the reported check, and whether lower is better.
    selection_metric: str
    lower_is_better: bool
    #: The dev metrics a config's ``selection_metric`` may name (checked before any data is read);
    #: a task without it selects by its own metric only.
    selectable: ClassVar[tuple[str, ...]]
    #: Record keys beside the metrics that the summary keeps at the selected check, as
    #: ``selected_<key>``: figures that describe a check but never select one (classification:
    #: the test predictions' calibration, :data:`labelemb.tasks.calibration.CALIBRATION_FIELDS`).
    selected_fields: ClassVar[tuple[str, ...]]
    #: How messages name the data it trains on ("an image data set").
    data_kind: ClassVar[str]
    #: How the figure it is judged by reads (name, unit, direction, how it is drawn), recorded in
    #: every summary; ``scorings`` are every figure the task can be judged by (for old summaries).
    scoring: Scoring
    scorings: ClassVar[tuple[Scoring, ...]]

    @classmethod
    def for_run(cls, config: Any, dataset: Any) -> Task:
        """The task of a run of ``config`` (a :class:`~labelemb.config.RunConfig`) on ``dataset``."""
        ...

    @staticmethod
    def method_problem(name: str) -> str | None:
        """Why method ``name`` cannot train this task, or None if it can (:func:`rows_problem`
        over the kind of rows the task gives the method)."""
        ...

    def run_files(self, dataset: Any) -> dict[str, str]:
        """Files a run of this task keeps beside its weights from the start (name -> text)."""
        ...

    def epoch_order(self, split: Any, seed: int, epoch: int, batch_size: int) -> Tensor:
        """The order of ``split`` in ``epoch`` (a function of seed and epoch): each consecutive
        ``batch_size`` slice is one batch."""
        ...

    def batch(self, split: Any, index: Tensor) -> tuple[Any, Tensor]:
        """The model inputs and the targets of ``split[index]`` (``index`` may lead with a seed dimension)."""
        ...

    #: The backbone's output and the targets as the method's rows (a sequence task keeps the
    #: counted positions); None where they are the method's rows as they come (one per example).
    rows: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None

    def work(self, split: Any, index: Tensor) -> float:
        """What a training step's cost grows with, for the examples ``split[index]``: how many
        there are, or their tokens (:mod:`labelemb.training.flops` scales counted FLOPs by it)."""
        ...

    def evaluate(
        self, predict: Predictor, dev: Any, test: Any, selectable: Selectable = always_selectable
    ) -> dict[str, Any]:
        """The task's metrics of one model on the dev (if any) and test splits (numbers), and its
        :attr:`selected_fields` (any JSON value). Where ``selectable`` says, from the dev figures,
        that this check can no longer be selected, a task may leave out figures that only the
        selected check's summary reads (a classifier's full and scaled test calibration). The
        argument is optional: the loop passes it only to an ``evaluate`` that takes it
        (:func:`evaluate_check`)."""
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


def chance_errors(dev: Any, test: Any) -> dict[str, float]:
    """The error (%) of always answering a split's most frequent class, per error metric of the
    splits there are (``dev_error``, ``test_error``): the chance level a classifier must beat.

    A classification task may offer this as ``chance_levels(dev, test)``; the trainer warns when a
    run never got below it (:func:`labelemb.training.results.warn_if_at_chance`).
    """
    levels = {}
    for name, split in (("dev", dev), ("test", test)):
        if split is not None and len(split):
            counts = torch.bincount(split.labels.reshape(-1).cpu().clamp(min=0))
            levels.update(in_units({f"{name}_error": 1.0 - float(counts.max()) / float(counts.sum())}))
    return levels


def evaluate_check(
    task: Task, predict: Predictor, dev: Any, test: Any, selectable: Selectable
) -> dict[str, Any]:
    """``task.evaluate`` at a check, told whether the check can still be selected where its
    ``evaluate`` takes ``selectable`` (a task written before that argument existed does not)."""
    if _takes_selectable(type(task)):
        return task.evaluate(predict, dev, test, selectable=selectable)
    return task.evaluate(predict, dev, test)


@functools.cache
def _takes_selectable(task_class: type) -> bool:
    return "selectable" in inspect.signature(task_class.evaluate).parameters
