"""Memorisation while training on noisy labels: what each training step predicted for its examples.

Each step writes the class its logits give every example of its batch into a table on the device,
one row per run (``(S, N)``, -1 where an example has not been seen yet): a scatter, no host read.
At a check, the table is compared with the noisy and the clean labels: of the examples whose label
is wrong, the share the network predicted as that wrong label (``train_memorised``, the rising curve
of Arpit et al. 2017 and Liu et al. 2020, Fig. 1) and as their true class (``train_flipped_correct``);
one small read per check. The table is in each run's checkpoint, so a resumed run counts the same.
The same record carries a run's training dynamics where they are asked for
(:mod:`labelemb.training.dynamics`), on noisy labels or clean ones.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .dynamics import TrainingDynamics, records_dynamics

#: The figures a check of a noisy run records, in percent of the wrongly labelled training examples.
MEMORISATION_FIELDS = ("train_memorised", "train_flipped_correct")
#: The checkpoint entry that holds a run's row of the table.
CHECKPOINT_KEY = "training_predictions"


class TrainingPredictions:
    """The last predicted class of every training example, per run, and the figures it gives."""

    def __init__(
        self,
        runs: int,
        noisy: Tensor,
        clean: Tensor | None,
        device: torch.device,
        dynamics: TrainingDynamics | None = None,
    ) -> None:
        self.noisy = noisy.to(device)
        # Clean labels (None: not known, the labels as given) have no memorisation to measure.
        self.measured = clean is not None
        self.clean = self.noisy if clean is None else clean.to(device)
        self.flipped = self.noisy != self.clean
        self.predicted = torch.full((runs, noisy.shape[0]), -1, dtype=torch.int64, device=device)
        self.dynamics = dynamics

    def record(self, index: Tensor, logits: Tensor) -> None:
        """A step's predictions: ``index`` ``(S, B)`` or ``(B,)``, ``logits`` ``(S, B, m)`` or ``(B, m)``."""
        if logits.shape[:-1] != index.shape:
            return  # rows that are not one per example (a sequence's tokens): nothing to record
        runs = self.predicted.shape[0]
        classes = logits.detach().argmax(dim=-1)
        self.predicted.scatter_(1, index.reshape(runs, -1), classes.reshape(runs, -1))
        if self.dynamics is not None:
            self.dynamics.record(index, logits)

    def figures(self) -> list[dict[str, float]]:
        """Each run's :data:`MEMORISATION_FIELDS` (percent of the flipped examples seen so far);
        nothing where the clean labels are not known."""
        if not self.measured:
            return [{} for _ in range(self.predicted.shape[0])]
        seen = (self.predicted >= 0) & self.flipped
        count = seen.sum(dim=1).clamp(min=1)
        memorised = ((self.predicted == self.noisy) & seen).sum(dim=1) / count
        corrected = ((self.predicted == self.clean) & seen).sum(dim=1) / count
        values = (100.0 * torch.stack([memorised, corrected], dim=1)).tolist()
        return [dict(zip(MEMORISATION_FIELDS, row)) for row in values]

    def state(self, s: int) -> dict[str, Any]:
        """Run ``s``'s row, for its checkpoint."""
        state = {CHECKPOINT_KEY: self.predicted[s].to(torch.int32).cpu()}
        return state if self.dynamics is None else {**state, **self.dynamics.state(s)}

    def restore(self, s: int, checkpoint: dict[str, Any] | None) -> None:
        """Run ``s``'s row as its checkpoint holds it (left unseen without one)."""
        saved = None if checkpoint is None else checkpoint.get(CHECKPOINT_KEY)
        if saved is not None:
            self.predicted[s] = saved.to(self.predicted.device, torch.int64)
        if self.dynamics is not None:
            self.dynamics.restore(s, checkpoint)


def training_predictions(runs: list[Any], dataset: Any, device: torch.device) -> TrainingPredictions | None:
    """The table for ``runs`` on ``dataset``, restored from their checkpoints; None for clean labels
    unless the training dynamics are recorded (:func:`~labelemb.training.dynamics.recording_dynamics`)."""
    noise = getattr(dataset, "noise", None)
    clean = None if noise is None else noise.clean.get("train")
    if clean is not None and clean.dim() > 1:
        clean = None  # tag sets with tags removed: memorisation reads one class label a row
    if clean is None and not records_dynamics():
        return None  # a sequence pair's split has no labels to read: nothing is asked of it
    labels = dataset.train.labels
    dynamics = TrainingDynamics(len(runs), labels, device) if records_dynamics() else None
    table = TrainingPredictions(len(runs), labels, clean, device, dynamics)
    for s, run in enumerate(runs):
        table.restore(s, run.checkpoint)
    return table
