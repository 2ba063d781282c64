"""Training dynamics: what each training step says of every example it trains on, summed over the
run (for ``labelemb label-issues --dynamics``, the in-sample detectors of wrong labels).

Per run and training row, on the device: the sum of the row's margins over its passes and how many
passes it had (their mean is its area under the margin, AUM, Pleiss et al. 2020), the margin and the
cross-entropy of its given label at its last pass, and the pass at which it was last not learned.
A row's margin is the logit of its given label minus the largest other logit (positive: the row is
learned, predicted as its given label). Each step adds its batch's values by scatters (no host
read); the tables ride in the run's checkpoint, so a resumed run counts on, and a finished run's
checkpoint holds them for whoever reads them (:func:`dynamics_of`).

Recording is asked for around a call of the trainer (:func:`recording_dynamics`); the tables are
carried by the training predictions' record (:mod:`labelemb.training.memorisation`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

#: The checkpoint entry that holds a run's tables.
DYNAMICS_KEY = "training_dynamics"
#: The tables, each ``(S, N)``: see the module docstring.
TABLES = ("margin_sum", "passes", "last_margin", "last_loss", "last_unlearned")

_RECORDING: contextvars.ContextVar[bool] = contextvars.ContextVar("labelemb_training_dynamics", default=False)


@contextlib.contextmanager
def recording_dynamics() -> Iterator[None]:
    """Runs trained in this block (in this process) record their training dynamics."""
    token = _RECORDING.set(True)
    try:
        yield
    finally:
        _RECORDING.reset(token)


def records_dynamics() -> bool:
    """Whether runs trained now record their training dynamics (:func:`recording_dynamics`)."""
    return _RECORDING.get()


class TrainingDynamics:
    """The tables of ``runs`` runs over the training rows whose given labels are ``labels`` (N,)."""

    def __init__(self, runs: int, labels: Tensor, device: torch.device) -> None:
        self.labels = labels.to(device, torch.int64)
        shape = (runs, labels.shape[0])
        self.margin_sum = torch.zeros(shape, dtype=torch.float32, device=device)
        self.passes = torch.zeros(shape, dtype=torch.int64, device=device)
        self.last_margin = torch.full(shape, float("nan"), dtype=torch.float32, device=device)
        self.last_loss = torch.full(shape, float("nan"), dtype=torch.float32, device=device)
        self.last_unlearned = torch.zeros(shape, dtype=torch.int64, device=device)
        self.offsets = torch.arange(runs, device=device)[:, None] * labels.shape[0]

    def record(self, index: Tensor, logits: Tensor) -> None:
        """A step's rows: ``index`` ``(S, B)`` or ``(B,)`` positions, ``logits`` ``(S, B, m)`` or
        ``(B, m)``."""
        runs = self.passes.shape[0]
        index = index.reshape(runs, -1)
        logits = logits.detach().float().reshape(*index.shape, -1)
        given = self.labels[index][..., None]
        own = logits.gather(-1, given).squeeze(-1)
        margin = own - logits.scatter(-1, given, float("-inf")).amax(dim=-1)
        loss = torch.logsumexp(logits, dim=-1) - own
        # Summed with accumulate: a row drawn twice in one step (a method's pairs) counts twice.
        flat = (index + self.offsets).reshape(-1)
        self.margin_sum.view(-1).index_put_((flat,), margin.reshape(-1), accumulate=True)
        self.passes.view(-1).index_put_((flat,), torch.ones_like(flat), accumulate=True)
        self.last_margin.scatter_(1, index, margin)
        self.last_loss.scatter_(1, index, loss)
        before = self.last_unlearned.gather(1, index)
        unlearned = torch.where(margin > 0, before, self.passes.gather(1, index))
        self.last_unlearned.scatter_(1, index, unlearned)

    def state(self, s: int) -> dict[str, Any]:
        """Run ``s``'s tables, for its checkpoint."""
        return {DYNAMICS_KEY: {name: getattr(self, name)[s].cpu() for name in TABLES}}

    def restore(self, s: int, checkpoint: dict[str, Any] | None) -> None:
        """Run ``s``'s tables as its checkpoint holds them (left empty without them)."""
        saved = None if checkpoint is None else checkpoint.get(DYNAMICS_KEY)
        for name in TABLES if saved is not None else ():
            table = getattr(self, name)
            table[s] = saved[name].to(table.device, table.dtype)


def dynamics_of(checkpoint: dict[str, Any] | None) -> dict[str, Tensor] | None:
    """The tables a run's checkpoint holds (each ``(N,)``), or None where it recorded none."""
    saved = None if checkpoint is None else checkpoint.get(DYNAMICS_KEY)
    if not isinstance(saved, dict) or set(saved) != set(TABLES):
        return None
    return {name: saved[name] for name in TABLES}
