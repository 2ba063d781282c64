"""The layout of one run: its own modules, as its step runs them, or split over torchrun processes."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .. import methods
from ..assembly.network import network_step, run_model
from ..methods.abilities import EpochState
from ..tasks import Predictor, Task
from . import distributed
from .dev_predictions import dev_predictions
from .epoch_order import epoch_order, rows_per_example
from .memorisation import TrainingPredictions
from .seed_run import SeedRun, load_state


class Single:
    """One run trained on its own; under torchrun each process steps on its shard of every batch.

    The batches of the loop are ``(1, B)``; this layout hands row 0 to the run.
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    #: What each step predicted for its examples, where the labels are noisy (the recipe sets it).
    predictions: TrainingPredictions | None = None

    def __init__(self, run: SeedRun, task: Task, device: torch.device) -> None:
        plan = run.plan
        self.runs = [run]
        self.task = task
        self.device = device
        self.processes = distributed.current()
        self.options = plan.steps.options(plan.seed)
        if self.options.channels_last:
            run.model.to(memory_format=torch.channels_last)
        self.clip_grad_norm = plan.optimiser.clip_grad_norm
        # The global random state is this run's own (runs built together each left theirs).
        torch.set_rng_state(run.rng_state)
        checkpoint = run.checkpoint
        if checkpoint is not None and self.options.generator is not None and "augment_rng" in checkpoint:
            self.options.generator.set_state(checkpoint["augment_rng"])
        # The data's labels were checked when read and the task's rows all count: the step reads
        # nothing on the host (a run that diverges is told when it ends, from its test outputs).
        methods.trust_batches(run.method)
        # What runs the training steps; the run's own modules stay what is evaluated and saved.
        self.model: nn.Module = plan.steps.compiled(run.model, device)
        self.method: nn.Module = plan.steps.compiled(run.method, device)
        self.stepper: nn.Module | None = None
        if self.processes.world_size > 1:
            # Buffers stay per process: methods all-reduce their own statistics (OLS counts, ...),
            # which broadcasting process 0's buffers before every step would overwrite.
            self.stepper = nn.parallel.DistributedDataParallel(
                run.network,
                device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False,
            )
        run.network.train()

    def optimise(self) -> None:
        """Adam and its learning-rate schedule as the run's plan says, over its network's
        parameters, resumed where its checkpoint left them."""
        run = self.runs[0]
        optimiser = run.plan.optimiser
        self.optimizer = optimiser.make(optimiser.groups(run.network.named_parameters()))
        self.scheduler = optimiser.schedule(self.optimizer)
        if run.checkpoint is not None:
            # A different parameter layout (another model, or a run of an older labelemb whose
            # method kept its layers apart) shows up here even when the weights could be mapped.
            load_state(run.folder, "optimizer", self.optimizer, run.checkpoint)
            self.scheduler.load_state_dict(run.checkpoint["scheduler"])

    def epoch_orders(self, epoch: int, split: Any, batch_size: int) -> Tensor:
        run = self.runs[0]
        return epoch_order(self.task, run.method, split, run.plan.seed, epoch, batch_size)[None]

    def step(self, split: Any, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # A method's rows that belong together (cskd's pairs) stay on one process.
        group = rows_per_example(self.runs[0].method)
        rows = self.processes.shard(index[0], group)
        out = self.forward(split, rows)
        if self.predictions is not None:
            self.predictions.record(rows, out.logits)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.runs[0].network.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        return out.loss.detach(), out.terms

    def forward(self, split: Any, index: Tensor) -> methods.MethodOutput:
        """The forward pass of a training step on ``split[index]``."""
        inputs, targets = self.task.batch(split, index)
        inputs = self.options.prepare(inputs, train=True)
        with self.options.precision(targets.device):
            if self.stepper is not None:  # the network under DistributedDataParallel: its forward
                return self.stepper(inputs, targets, index)
            backbone = partial(run_model, self.model)
            return network_step(backbone, self.task.rows, self.method, inputs, targets, index)

    @torch.no_grad()
    def hand_dev_predictions(self, dev: Any) -> None:
        """The run's method gets the dev split's logits and labels
        (:mod:`labelemb.training.dev_predictions`)."""
        logits, labels = dev_predictions(self.task, self.predictor(0), dev, self.device)
        self.runs[0].method.on_dev_predictions(logits, labels)

    def update_epoch_state(self) -> None:
        if isinstance(self.runs[0].method, EpochState):
            self.runs[0].method.on_epoch_end()

    def sync(self) -> None:
        """The run's modules are the ones being trained: nothing to copy."""

    def predictor(self, s: int) -> Predictor:
        run, options = self.runs[s], self.options
        return Predictor(
            run.network,
            run.model,
            run.method,
            prepare=lambda inputs: options.prepare(inputs, train=False),
            autocast=options.autocast,
        )

    def checkpoint_state(self, s: int) -> dict[str, Any]:
        generator = self.options.generator
        return {
            "network": self.runs[0].network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **({"augment_rng": generator.get_state()} if generator is not None else {}),
        }
