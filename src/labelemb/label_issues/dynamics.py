"""The in-sample family of detectors: training dynamics of one ordinary run of the config on every
training row (``labelemb label-issues --dynamics``, ``find_label_issues(dynamics=True)``).

The run's training steps record, for each row, the margin of its given label at each pass (its logit
minus the largest other logit) and its cross-entropy (:mod:`labelemb.training.dynamics`); no second
pass over the data is made. The detectors, each low where the label looks wrong, as cleanlab's
label quality is:

- ``aum``: the area under the margin (Pleiss et al., NeurIPS 2020), the row's margin averaged over
  every pass of training: a wrong label is pulled up by its own row and pushed down by the rows of
  its true class, so its margin stays low or negative for long;
- ``final_margin``: the margin at the row's last pass;
- ``final_loss``: minus the cross-entropy of the given label at the row's last pass;
- ``first_learned``: minus the epoch (pass, counted from 1) from which the row stays learned,
  predicted as its given label at every later pass; a row not learned at its last pass counts as
  learned one pass after the end. Rows learned late, or never, are the suspects (many tie).

Each row's values come from the steps that trained on it, in training mode (dropout, augmentation)
and with the weights of that moment: in sample, which a network that has memorised its wrong
labels blurs; the cross-fitted detectors are out of sample."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from ..data import Dataset
from ..rundir import RunDir
from ..training import dynamics_of, recording_dynamics, train
from .detectors import DYNAMICS_DETECTORS, Detection
from .folds import LabelIssuesError


@dataclass(frozen=True)
class Dynamics:
    """Each training row's score by every detector of :data:`DYNAMICS_DETECTORS`, the run that
    gave them and the seconds it took."""

    scores: dict[str, np.ndarray]
    run_dir: Path
    seconds: float


def dynamics_config(config: RunConfig, folder: Path) -> RunConfig:
    """The run of the training dynamics: ``config`` written under ``folder``/dynamics, keeping its
    checkpoint whatever ``train.keep_checkpoint`` says (the dynamics are read from it)."""
    experiment = (folder / "dynamics").relative_to(config.output_dir).as_posix()
    train = config.train.model_copy(update={"keep_checkpoint": True})
    return config.model_copy(update={"experiment": experiment, "train": train})


def train_dynamics(config: RunConfig, dataset: Dataset, folder: Path, *, progress: bool = True) -> Dynamics:
    """Train one run of ``config`` on every training row of ``dataset`` (as given; a frozen
    backbone's features where the search computed them), recording its training dynamics, and
    score each row by them; a finished run is read back, not trained again."""
    start = time.perf_counter()
    run = dynamics_config(config, folder)
    with recording_dynamics():
        train(run, dataset=dataset, progress=progress)
    tables = dynamics_of(RunDir(run.run_dir()).read_checkpoint())
    if tables is None:
        raise LabelIssuesError(
            f"the run in {run.run_dir()} holds no training dynamics (its checkpoint was removed, or it "
            "was trained without them); delete that folder to train it again"
        )
    scores = dynamics_scores({name: table.numpy() for name, table in tables.items()})
    return Dynamics(scores, run.run_dir(), time.perf_counter() - start)


def dynamics_scores(tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The detectors' scores (see the module docstring) from a run's tables (each ``(N,)``)."""
    passes = tables["passes"].astype(np.int64)
    unseen = int((passes == 0).sum())
    if unseen:
        raise LabelIssuesError(
            f"{unseen} training row(s) were never trained on in the dynamics run (it stopped before one "
            "epoch was over): train it for an epoch or more (train.epochs, train.max_steps)"
        )
    values = (
        tables["margin_sum"].astype(np.float64) / passes,
        tables["last_margin"].astype(np.float64),
        -tables["last_loss"].astype(np.float64),
        -(tables["last_unlearned"].astype(np.float64) + 1.0),
    )
    scores = dict(zip(DYNAMICS_DETECTORS, values))
    broken = sum(int((~np.isfinite(score)).sum()) for score in scores.values())
    if broken:
        raise LabelIssuesError(
            f"the dynamics run's margins or losses are not finite ({broken} values): it diverged; "
            "train it with a lower train.lr"
        )
    return scores


def with_dynamics(
    detection: Detection, config: RunConfig, dataset: Dataset, folder: Path, progress: bool
) -> tuple[Detection, dict[str, Any]]:
    """``detection`` with the training dynamics' detectors beside its own (:func:`train_dynamics`),
    and what the list's summary says of their run (its folder, its seconds)."""
    found = train_dynamics(config, dataset, folder, progress=progress)
    summary = {"dynamics_run": str(found.run_dir), "dynamics_seconds": round(found.seconds, 1)}
    return replace(detection, scores={**detection.scores, **found.scores}), summary
