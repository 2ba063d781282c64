"""The layout of many seeds side by side: every parameter and buffer stacked, one step trains them all.

The paper ran every setting over 20 seeds. A step of a small model on one seed's batch of 100 is
many small operations, each paying a fixed cost (Python, dispatch, a kernel launch on a GPU, an
optimiser pass over a few small tensors), so S seeds train side by side, each operation covering
all of them:

- Each seed is built exactly as a run of its own (:func:`~labelemb.training.recipe.build_seed_run`), so the
  initialisations are the sequential ones.
- The backbone's parameters are stacked along a new leading seed dimension and run through its
  own grouped forward pass: a backbone stacks when its class defines
  ``stacked_forward(params, inputs)``, features ``(S, B, d)`` from inputs ``(S, B, ...)`` with
  ``params[name]`` its parameters stacked (:mod:`labelemb.models.stacked_layers`). The MLP, the
  CNN, the bag of words and a frozen backbone's feature head do; which models batch is read from
  the model registry, so a new stackable backbone is one hook and no edit here.
- The method is one module of its class whose parameters and buffers are the seeds' stacked
  (:func:`labelemb.stacking.stack_modules`): the method's own ``forward`` runs on ``(S, B, d)``
  features and returns each seed's loss ``(S,)``. Any method that mixes in ``Stackable`` runs so.
- Each seed keeps its own data order (``epoch_permutation(seed, epoch, n)``).
- The loss is the sum of the seeds' losses, so each seed's gradient is its own loss's gradient;
  Adam is elementwise, so one Adam over the stacked parameters is S independent Adams. Runs of
  different learning rates (a tuning round's trials) step at the largest, each row's step then cut
  to its own rate's share.

Each seed's checkpoint is written in the one format (its own network, optimiser state and random
state), so a batched run resumes batched *or* alone, and the reverse. Results equal runs of their
own up to floating-point rounding (batched and single matrix products round differently), where
no step draws random numbers: dropout's masks are drawn for all seeds at once here and seed by
seed alone, so a model with dropout gives other (equally random) numbers side by side.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .. import methods
from ..assembly.network import network_step
from ..data import Split
from ..methods.abilities import EpochState
from ..stacking import stack_modules, unstack_into
from ..tasks import Predictor, Task
from .batched import BatchedConfigError, stacks
from .dev_predictions import dev_predictions
from .epoch_order import epoch_order
from .memorisation import TrainingPredictions
from .seed_run import SeedRun, load_state


class Stacked:
    """Runs of one config over several seeds, at the same step, trained side by side.

    ``params`` holds every parameter stacked, under the names the runs' own networks use
    (``model.layers.1.weight``, ``method.heads.weight``); seed ``s``'s parameter and Adam
    state are row ``s``. ``backbone`` is its ``model.*`` part under the backbone's own names
    (``layers.1.weight``), what the backbone's ``stacked_forward`` reads.
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    own_optimizers: list[torch.optim.Optimizer]
    #: What each step predicted for its examples, where the labels are noisy (the recipe sets it).
    predictions: TrainingPredictions | None = None

    def __init__(self, runs: list[SeedRun], task: Task, device: torch.device) -> None:
        self.runs = runs
        self.task = task
        self.device = device
        self.model = runs[0].model
        if not stacks(self.model):
            name = type(self.model).__name__
            raise BatchedConfigError(f"{name} is not a backbone the batched trainer can stack")
        own_methods = [run.method for run in runs]
        _check_same_shapes(own_methods)
        # Settings of the method's own options side by side (a tuning round's trials): each runs
        # its own options on its slice of the stacked tensors.
        settings = [run.plan.method.options for run in runs]
        self.step_method: nn.Module | StackedSettings
        if any(setting != settings[0] for setting in settings[1:]):
            settings = StackedSettings(own_methods)
            self.method, self.step_method = settings.stacked, settings
        else:
            self.method = self.step_method = stack_modules(own_methods)
        for method in (*own_methods, self.method):  # as in Single: no step reads on the host
            methods.trust_batches(method)
        self.method.train()
        # The steps' draws (a backbone's dropout) come from the global random state: the first
        # run's, resumed from its checkpoint, which carries it on (:meth:`checkpoint_state`).
        torch.set_rng_state(runs[0].rng_state)
        seeds = [dict(run.model.named_parameters()) for run in runs]
        self.backbone = {
            name: torch.stack([params[name].detach() for params in seeds])
            .contiguous()
            .requires_grad_(param.requires_grad)
            for name, param in seeds[0].items()
        }
        stacked = {
            **{f"model.{name}": p for name, p in self.backbone.items()},
            **{f"method.{name}": p for name, p in self.method.named_parameters()},
        }
        # The runs' own parameter order: a run's optimiser state is indexed by position.
        self.params = {name: stacked[name] for name, _ in runs[0].network.named_parameters()}
        # Settings of different learning rates side by side (a tuning round that searches
        # train.lr): the stacked Adam steps at the largest, and each row's step is then cut to its
        # own rate's share of it (:meth:`_scale_steps`). Adam's step is the rate times a direction
        # the rate does not change, so row s moves as an Adam at its own rate would.
        rates = [run.plan.optimiser.lr for run in runs]
        top = max(rates)
        self.lr_shares = [rate / top for rate in rates]
        # Each parameter's shares, shaped to scale its rows; None where every row steps at one rate.
        self._row_shares: list[Tensor] | None = None
        if any(share != 1.0 for share in self.lr_shares):
            self._row_shares = [
                param.new_tensor(self.lr_shares).view(-1, *[1] * (param.dim() - 1))
                for param in self.params.values()
            ]
        self.top_lr = top
        # The step of the parts, not a method of this layout: a layout that held its own bound
        # method would be a reference cycle, its runs (networks, Adam's moments) kept after they
        # finish until Python's next full collection, a method's worth of memory at each.
        features = partial(self.model.stacked_forward, self.backbone)
        step = partial(network_step, features, task.rows, self.step_method)
        self._forward = runs[0].plan.steps.compiled(step, device)

    def optimise(self) -> None:
        """One Adam over the stacked parameters at the largest of the runs' learning rates (each
        row's step then cut to its own), its schedule, and each run's own Adam, what carries its
        state into and out of its checkpoint in the one format; resumed where the runs'
        checkpoints left them."""
        optimiser = self.runs[0].plan.optimiser.at(self.top_lr)
        self.optimizer = optimiser.make(optimiser.groups(self.params.items()))
        self.scheduler = optimiser.schedule(self.optimizer)
        self.own_optimizers = [
            run.plan.optimiser.make(run.plan.optimiser.groups(run.network.named_parameters()))
            for run in self.runs
        ]
        if self.runs[0].checkpoint is not None:
            self._restore()

    # ------------------------------------------------------------------ checkpoints

    def _restore(self) -> None:
        """Put the runs' resumed Adam states (from their checkpoints) into the stacked Adam."""
        for run, own in zip(self.runs, self.own_optimizers):
            load_state(run.folder, "optimizer", own, run.checkpoint)
        self.scheduler.load_state_dict(
            _scaled_schedule(self.runs[0].checkpoint["scheduler"], 1 / self.lr_shares[0])
        )
        _copy_learning_rates(self.own_optimizers[0], self.optimizer, 1 / self.lr_shares[0])
        own_params = [_in_order(own) for own in self.own_optimizers]
        for i, stacked in enumerate(_in_order(self.optimizer)):
            states = [own.state.get(params[i]) for own, params in zip(self.own_optimizers, own_params)]
            if not states[0]:
                continue
            state: dict[str, Any] = {}
            for key, value in states[0].items():
                if isinstance(value, Tensor) and value.dim() > 0:
                    state[key] = torch.stack([s[key] for s in states]).to(stacked.device).contiguous()
                elif isinstance(value, Tensor):  # the step count, the same for every run
                    # The fused kernel keeps it on the parameters' device, the plain one on the host.
                    defaults = self.optimizer.defaults
                    on_device = defaults.get("fused") or defaults.get("capturable")
                    state[key] = value.to(stacked.device, torch.float32) if on_device else value.clone()
                else:
                    state[key] = value
            self.optimizer.state[stacked] = state
        for own in self.own_optimizers:
            own.state.clear()

    def checkpoint_state(self, s: int) -> dict[str, Any]:
        run, own = self.runs[s], self.own_optimizers[s]
        _copy_learning_rates(self.optimizer, own, self.lr_shares[s])
        for stacked, param in zip(_in_order(self.optimizer), _in_order(own)):
            state = self.optimizer.state.get(stacked)
            if state:
                own.state[param] = {key: _seed_entry(value, s) for key, value in state.items()}
        try:
            return {
                "network": run.network.state_dict(),
                "optimizer": own.state_dict(),
                "scheduler": _scaled_schedule(self.scheduler.state_dict(), self.lr_shares[s]),
                # Seed 0's: the state the steps draw from, where a batched resume carries on; each
                # other seed keeps its own (what its checkpoint of its own would hold, drawing none).
                "torch_rng": torch.get_rng_state() if s == 0 else run.rng_state,
            }
        finally:
            own.state.clear()

    # ------------------------------------------------------------------ training

    def epoch_orders(self, epoch: int, split: Split, batch_size: int) -> Tensor:
        return torch.stack(
            [epoch_order(self.task, run.method, split, run.plan.seed, epoch, batch_size) for run in self.runs]
        )

    def step(self, split: Split, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        inputs, targets = self.task.batch(split, index)
        out = self._forward(inputs, targets, index)
        if self.predictions is not None:
            self.predictions.record(index, out.logits)
        self.optimizer.zero_grad(set_to_none=True)
        # Summed, each seed's gradient is exactly its own loss's gradient.
        out.loss.sum().backward()
        before = self._before_step()
        self.optimizer.step()
        if before is not None:
            self._scale_steps(before)
        return out.loss.detach(), out.terms

    def _before_step(self) -> list[Tensor] | None:
        """The parameters before the step, where the rows step at different learning rates."""
        if self._row_shares is None:
            return None
        return [param.detach().clone() for param in self.params.values()]

    @torch.no_grad()
    def _scale_steps(self, before: list[Tensor]) -> None:
        """Row s's step, taken at the largest rate, cut to its own: ``p = p0 + share_s (p - p0)``."""
        assert self._row_shares is not None
        for param, start, shares in zip(self.params.values(), before, self._row_shares):
            torch.lerp(start, param, shares, out=param)

    def features(self, inputs: Tensor) -> Tensor:
        """The backbone's features ``(S, B, d)``, seed ``s``'s inputs through seed ``s``'s backbone."""
        return self.model.stacked_forward(self.backbone, inputs)

    @torch.no_grad()
    def hand_dev_predictions(self, dev: Any) -> None:
        """Each seed's dev logits from its own weights (seed ``s``'s predictor), stacked ``(S, N, m)``
        with the labels ``(S, N)``, to the stacked method (:mod:`labelemb.training.dev_predictions`)."""
        self.sync()
        seeds = [
            dev_predictions(self.task, self.predictor(s), dev, self.device) for s in range(len(self.runs))
        ]
        logits, labels = (torch.stack(parts) for parts in zip(*seeds))
        self.step_method.on_dev_predictions(logits, labels)

    def update_epoch_state(self) -> None:
        if isinstance(self.runs[0].method, EpochState):  # the seeds' methods are of one class
            self.step_method.on_epoch_end()

    @torch.no_grad()
    def sync(self) -> None:
        for s, run in enumerate(self.runs):
            for name, param in run.model.named_parameters():
                param.copy_(self.params[f"model.{name}"][s])
        unstack_into(self.method, [run.method for run in self.runs])

    def predictor(self, s: int) -> Predictor:
        run = self.runs[s]
        return Predictor(run.network, run.model, run.method)


class StackedSettings:
    """Settings of one method side by side: the members' tensors stacked (``stacked``, what the
    optimiser and the checkpoints see, as for seeds), each setting's own options kept by its module
    (``members``). A step runs member ``s`` on slice ``s`` of the stacked tensors
    (``torch.func.functional_call``), so its gradient lands in that slice and its in-place updates
    (online label smoothing's statistics) in that slice's storage; the losses come back stacked
    ``(S,)`` as a stacked method's would. The backbone is still one grouped pass for all settings.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        self.stacked = stack_modules(members)
        self.members = members
        self.needs_index = self.stacked.needs_index
        for member in members:
            member.train()

    def _slices(self, s: int) -> dict[str, Tensor]:
        return {name: tensor[s] for name, tensor in _named_tensors(self.stacked)}

    def __call__(
        self, features: Tensor, target: Tensor, *, index: Tensor | None = None
    ) -> methods.MethodOutput:
        outputs = []
        for s, member in enumerate(self.members):
            kwargs = {"index": None if index is None else index[s]}
            outputs.append(functional_call(member, self._slices(s), (features[s], target[s]), kwargs))
        return methods.MethodOutput(
            torch.stack([out.loss for out in outputs]),
            torch.stack([out.logits for out in outputs]),
            {key: torch.stack([out.terms[key] for out in outputs]) for key in outputs[0].terms},
        )

    def on_epoch_end(self) -> None:
        for s in range(len(self.members)):
            self._call(s, "on_epoch_end")

    def on_dev_predictions(self, logits: Tensor, labels: Tensor) -> None:
        for s in range(len(self.members)):
            self._call(s, "on_dev_predictions", logits[s], labels[s])

    def _call(self, s: int, hook: str, *args: Tensor) -> None:
        """Member ``s``'s ``hook(*args)`` on its slice of the stacked tensors."""
        caller = _Hook(self.members[s], hook)
        functional_call(caller, {f"method.{name}": t for name, t in self._slices(s).items()}, args)


def _check_same_shapes(settings: list[nn.Module]) -> None:
    """Stacking needs every setting's tensors of one shape; options that change them are refused."""
    shapes = {name: t.shape for name, t in _named_tensors(settings[0])}
    for method in settings[1:]:
        for name, tensor in _named_tensors(method):
            if shapes.get(name) != tensor.shape:
                raise BatchedConfigError(
                    f"the settings side by side give {name} different shapes; options that change a "
                    "method's tensors cannot train side by side: train them one after another"
                )


class _Hook(nn.Module):
    """A method's hook (``on_epoch_end``, ``on_dev_predictions``) as a module's forward, so that it
    runs on swapped-in tensors."""

    def __init__(self, method: nn.Module, hook: str) -> None:
        super().__init__()
        self.method = method
        self.hook = hook

    def forward(self, *args: Tensor) -> None:
        getattr(self.method, self.hook)(*args)


def _named_tensors(module: nn.Module) -> list[tuple[str, Tensor]]:
    return [*module.named_parameters(), *module.named_buffers()]


def _seed_entry(value: Any, s: int) -> Any:
    """One entry of seed ``s``'s Adam state, as an optimiser of its own keeps it."""
    if not isinstance(value, Tensor):
        return value
    if value.dim() == 0:  # the step count, shared by the seeds
        return value.detach().clone()
    # A clone: saving a view would write the whole stacked storage into every checkpoint.
    return value[s].clone()


def _in_order(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """An optimiser's parameters, group after group: the positions its state is saved under."""
    return [param for group in optimizer.param_groups for param in group["params"]]


def _copy_learning_rates(source: torch.optim.Optimizer, target: torch.optim.Optimizer, scale: float) -> None:
    """Each group's current and initial learning rate (the schedule's), from one Adam to its twin,
    times ``scale`` (a run's rate over the stacked Adam's: 1 where all share one)."""
    for from_group, to_group in zip(source.param_groups, target.param_groups):
        for key in ("lr", "initial_lr"):
            if key in from_group:
                to_group[key] = from_group[key] * scale


def _scaled_schedule(state: dict[str, Any], scale: float) -> dict[str, Any]:
    """A learning-rate schedule's state with its rates times ``scale``: one run's from the stacked
    schedule's, or the reverse."""
    scaled = dict(state)
    for key in ("base_lrs", "_last_lr"):
        if key in scaled:
            scaled[key] = [rate * scale for rate in scaled[key]]
    return scaled
