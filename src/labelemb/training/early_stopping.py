"""Early stopping (``train.early_stopping``): a run stops when its selection metric has not
improved for ``patience`` checks; ``train.epochs`` stays the ceiling.

"Improved" means better than the best so far by more than ``min_delta`` (lower for an error,
higher for BLEU / ROUGE / macro-F1: the task says which). The counter lives in the run's
:class:`~labelemb.training.seed_run.Progress`, so it is in every checkpoint and a resumed run carries on
counting where it was killed. :class:`EarlyStopping` is the callback every run of the trainer gets
(:mod:`labelemb.callbacks`): it counts each check before the check's checkpoint is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..callbacks import Callback
from ..config import ConfigError


class Patience(Protocol):
    """What early stopping keeps of a run (the fields of :class:`~labelemb.training.seed_run.Progress`)."""

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


class EarlyStopping(Callback):
    """``train.early_stopping`` as a callback: refuses data without a dev split, counts every check
    of a run on its task's selection metric (in the run's progress, so in its checkpoint) and stops
    the run (``progress.stopped``) once it has not improved for ``patience`` checks."""

    def setup(self, configs: Sequence[Any], dataset: Any, task: Any) -> None:
        config = configs[0]
        if config.train.early_stopping is not None and dataset.dev is None:
            raise ConfigError(
                f"train.early_stopping watches the dev split's {task.selection_metric}, but data "
                f"{config.data.name!r} has no dev split: remove train.early_stopping, or give a dev split "
                "(data.files.dev, or data.files.dev_fraction for your own files)"
            )

    def on_record(self, run: Any) -> None:
        rule = run.plan.early_stopping
        progress, task = run.progress, run.plan.task
        if rule is not None and progress.stopped is None:
            record = progress.records[-1]
            metric, lower = task.selection_metric, task.lower_is_better
            update_patience(progress, record, metric, lower, rule.patience, rule.min_delta)
