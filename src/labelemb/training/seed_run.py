"""One (method, seed) run as the loop holds it: where it stands (:class:`Progress`, saved in every
checkpoint), its own modules, the checkpoint it resumes from and its random state; built and
restored by the recipe (:func:`labelemb.training.recipe.build_seed_run`); and what the loop runs over
(:class:`Timetable`: the data on its device, the step arithmetic)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .. import methods
from ..assembly.network import Network
from ..assembly.plan import RunPlan
from ..config import RunConfig
from ..rundir import RunDir, RunDirError
from ..version import code_version


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0
    batch: int = 0  # next batch to run within ``epoch``
    step: int = 0
    examples: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)
    # Early stopping (train.early_stopping): the best selection metric so far, the checks since it
    # last improved, and why and where the run stopped (None: it has not).
    best_selection: float | None = None
    checks_without_improvement: int = 0
    stopped: dict[str, Any] | None = None
    #: The finished shorter run this one started from (train.continue_from), and its last step.
    continued_from: dict[str, Any] | None = None
    #: The code that trained each part of the run: ``{"labelemb": version, "from_step": step}``
    #: in order (:func:`with_this_code`); a resumed run's parts may be of different code.
    code: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SeedRun:
    """One (method, seed) run as the loop holds it: its plan (config, folder, device, task), own
    modules, progress."""

    plan: RunPlan
    model: nn.Module
    method: methods.Method
    network: Network
    progress: Progress
    #: The checkpoint this run resumes from (None: a fresh start); the layout restores its
    #: optimiser, schedule and random state.
    checkpoint: dict[str, Any] | None
    #: The global random state this run has after its build (or its checkpoint's): what a run
    #: trained side by side with others saves, as if it had trained alone.
    rng_state: Tensor
    #: Counted training FLOPs per training example (:mod:`labelemb.training.flops`); None: not counted.
    flops_per_example: float | None = None

    @property
    def config(self) -> RunConfig:
        return self.plan.config

    @property
    def folder(self) -> RunDir:
        return self.plan.folder


def with_this_code(parts: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The code that trained each part of a run (:attr:`Progress.code`) once this code trains it
    on from ``step``: a part of its own unless the last part is already this code's. A run resumed
    from a checkpoint that recorded no code gets an unknown first part (``"labelemb": None``)."""
    here = code_version()
    if parts and parts[-1]["labelemb"] == here:
        return parts
    earlier = parts or ([{"labelemb": None, "from_step": 0}] if step > 0 else [])
    return [*earlier, {"labelemb": here, "from_step": step}]


def load_state(folder: RunDir, key: str, target: Any, checkpoint: dict[str, Any]) -> None:
    """``target.load_state_dict(checkpoint[key])``, or a :class:`RunDirError` that says what to do."""
    try:
        target.load_state_dict(checkpoint[key])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunDirError(
            f"checkpoint {folder.path / 'checkpoint.pt'} was written by a different model, method or "
            f"labelemb version and cannot be resumed:\n{error}\n"
            "Use another output_dir, or delete the checkpoint to start afresh."
        ) from None


@dataclass
class Timetable:
    """A run's data on its device and the step arithmetic of the loop."""

    train: Any  # a Split, or TextPairs
    dev: Any | None
    test: Any
    batch_size: int
    eval_every: int | None  # examples between checks; None: at each epoch's end
    epochs: int
    max_steps: int | None = None  # stop after this many updates

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.num_train / self.batch_size)

    @property
    def total_steps(self) -> int:
        steps = self.batches_per_epoch * self.epochs
        return min(steps, self.max_steps or steps)
