"""Memorisation while training on noisy labels: what each training step predicted for its examples.

Each step writes the class its logits give every example of its batch into a table on the device,
one row per run (``(S, N)``, -1 where an example has not been seen yet): a scatter, no host read.
At a check, the table is compared with the noisy and the clean labels: of the examples whose label
is wrong, the share the network predicted as that wrong label (``train_memorised``, the rising curve
of Arpit et al. 2017 and Liu et al. 2020, Fig. 1) and as their true class (``train_flipped_correct``);
one small read per check. The table is in each run's checkpoint, so a resumed run counts the same.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

#: The figures a check of a noisy run records, in percent of the wrongly labelled training examples.
MEMORISATION_FIELDS = ("train_memorised", "train_flipped_correct")
#: The checkpoint entry that holds a run's row of the table.
CHECKPOINT_KEY = "training_predictions"


class TrainingPredictions:
    """The last predicted class of every training example, per run, and the figures it gives."""

    def __init__(self, runs: int, noisy: Tensor, clean: Tensor, device: torch.device) -> None:
        self.noisy = noisy.to(device)
        self.clean = clean.to(device)
        self.flipped = self.noisy != self.clean
        self.predicted = torch.full((runs, noisy.shape[0]), -1, dtype=torch.int64, device=device)

    def record(self, index: Tensor, logits: Tensor) -> None:
        """A step's predictions: ``index`` ``(S, B)`` or ``(B,)``, ``logits`` ``(S, B, m)`` or ``(B, m)``."""
        if logits.shape[:-1] != index.shape:
            return  # rows that are not one per example (a sequence's tokens): nothing to record
        runs = self.predicted.shape[0]
        classes = logits.detach().argmax(dim=-1)
        self.predicted.scatter_(1, index.reshape(runs, -1), classes.reshape(runs, -1))

    def figures(self) -> list[dict[str, float]]:
        """Each run's :data:`MEMORISATION_FIELDS` (percent of the flipped examples seen so far)."""
        seen = (self.predicted >= 0) & self.flipped
        count = seen.sum(dim=1).clamp(min=1)
        memorised = ((self.predicted == self.noisy) & seen).sum(dim=1) / count
        corrected = ((self.predicted == self.clean) & seen).sum(dim=1) / count
        values = (100.0 * torch.stack([memorised, corrected], dim=1)).tolist()
        return [dict(zip(MEMORISATION_FIELDS, row)) for row in values]

    def state(self, s: int) -> dict[str, Any]:
        """Run ``s``'s row, for its checkpoint."""
        return {CHECKPOINT_KEY: self.predicted[s].to(torch.int32).cpu()}

    def restore(self, s: int, checkpoint: dict[str, Any] | None) -> None:
        """Run ``s``'s row as its checkpoint holds it (left unseen without one)."""
        saved = None if checkpoint is None else checkpoint.get(CHECKPOINT_KEY)
        if saved is not None:
            self.predicted[s] = saved.to(self.predicted.device, torch.int64)


def training_predictions(runs: list[Any], dataset: Any, device: torch.device) -> TrainingPredictions | None:
    """The table for ``runs`` on ``dataset``, restored from their checkpoints; None for clean labels."""
    noise = getattr(dataset, "noise", None)
    if noise is None or "train" not in noise.clean:
        return None
    table = TrainingPredictions(len(runs), dataset.train.labels, noise.clean["train"], device)
    for s, run in enumerate(runs):
        table.restore(s, run.checkpoint)
    return table
