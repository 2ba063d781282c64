"""Early stopping (``train.early_stopping``): a run stops when its selection metric has not
improved for ``patience`` checks; ``train.epochs`` stays the ceiling.

"Improved" means better than the best so far by more than ``min_delta`` (lower for an error,
higher for BLEU / ROUGE / macro-F1: the task says which). The counter lives in the run's
:class:`~labelemb.train.loop.Progress`, so it is in every checkpoint and a resumed run carries on
counting where it was killed.
"""

from __future__ import annotations

from typing import Any, Protocol


class Patience(Protocol):
    """What early stopping keeps of a run (the fields of :class:`~labelemb.train.loop.Progress`)."""

    best_selection: float | None
    checks_without_improvement: int
    stopped: dict[str, Any] | None


def update_patience(
    progress: Patience,
    record: dict[str, Any],
    metric: str,
    lower_is_better: bool,
    patience: int,
    min_delta: float,
) -> bool:
    """Count the check of ``record`` on ``metric``; return (and record in ``progress.stopped``)
    whether the run stops here."""
    value = float(record[metric])
    best = progress.best_selection
    improved = best is None or (value < best - min_delta if lower_is_better else value > best + min_delta)
    if improved:
        progress.best_selection = value
        progress.checks_without_improvement = 0
        return False
    progress.checks_without_improvement += 1
    if progress.checks_without_improvement < patience:
        return False
    progress.stopped = {
        "reason": "early_stopping",
        "step": record["step"],
        "epoch": record["epoch"],
        "detail": (f"{metric} did not improve on {best:g} by more than {min_delta:g} in {patience} checks"),
    }
    return True
