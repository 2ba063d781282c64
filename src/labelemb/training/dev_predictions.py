"""The door for a method that reads the dev split's predictions at each epoch's end.

A method says so by mixing in :class:`~labelemb.methods.abilities.ReadsDev` (the trainer asks
``isinstance``), and receives them in :meth:`~labelemb.methods.Method.on_dev_predictions`. At each
epoch's end, before the methods' ``on_epoch_end``, each run's method is handed the dev split's
logits, computed by the task (``split_logits``) through the run's predictor (the weights of that
moment, in evaluation mode, as a check evaluates them), and the dev labels; seeds side by side
each their own.
Under torchrun every process computes them and all take process 0's, so every process reaches the
same state. A run whose data has no dev split, or whose task gives no logits of a split, is refused
before anything trains (:class:`DevSplitCheck`). Nothing here asks which method it serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import methods
from ..callbacks import Callback
from ..config import ConfigError
from ..methods.abilities import ReadsDev
from ..methods.processes import from_main_process
from ..tasks import Predictor, Task


def reads_dev(method: Any) -> bool:
    """Whether ``method`` (a method, or one stacked over seeds) reads the dev split's predictions."""
    return isinstance(method, ReadsDev)


def dev_predictions(
    task: Task, predictor: Predictor, dev: Any, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The dev split's logits ``(N, m)`` as ``predictor`` gives them and its labels ``(N,)``, on
    ``device``: process 0's on every process."""
    # Copies: the task computes in inference mode, and the broadcast writes in place.
    logits = task.split_logits(predictor, dev).to(device=device, copy=True)
    labels = dev.labels.to(device=device, copy=True)
    return from_main_process(logits), labels


class DevSplitCheck(Callback):
    """Refuses, once the data is read and before anything trains, a method that reads the dev
    split's predictions where there are none to read."""

    def setup(self, configs: Sequence[Any], dataset: Any, task: Any) -> None:
        for name in dict.fromkeys(config.method.name for config in configs):
            if not issubclass(methods.method_class(name), ReadsDev):
                continue
            reads = f"method {name!r} reads the dev split's predictions at each epoch's end"
            if dataset.dev is None:
                raise ConfigError(
                    f"{reads}, but data {configs[0].data.name!r} has no dev split: give it one "
                    "(data.files.dev, or data.files.dev_fraction for your own files), or use another method"
                )
            if not callable(getattr(task, "split_logits", None)):
                raise ConfigError(
                    f"{reads}, which {task.data_kind} does not give (its task, {type(task).__name__}, "
                    "predicts no logits of a split): use another method"
                )
