"""The layout of many seeds side by side: every parameter and buffer stacked, one step trains them all.

The paper ran every setting over 20 seeds. A step of a small model on one seed's batch of 100 is
many small operations, each paying a fixed cost (Python, dispatch, a kernel launch on a GPU, an
optimiser pass over a few small tensors), so S seeds train side by side, each operation covering
all of them:

- Each seed is built exactly as a run of its own (:func:`~labelemb.train.loop.build_run`), so the
  initialisations are the sequential ones.
- The backbone's parameters are stacked along a new leading seed dimension and run as grouped
  layers: a fully connected layer is one batched matrix product over the seeds, a convolution
  one grouped convolution (``groups=S``). A bag of words looks up every seed's embedding table,
  stacked ``(S, rows, d)``, as one table: seed ``s``'s word ids are offset by ``s * rows``.
- The method is one module of its class whose parameters and buffers are the seeds' stacked
  (:func:`labelemb.stacking.stack_modules`): the method's own ``forward`` runs on ``(S, B, d)``
  features and returns each seed's loss ``(S,)``. Any method with ``stackable = True`` runs so.
- Each seed keeps its own data order (``epoch_permutation(seed, epoch, n)``).
- The loss is the sum of the seeds' losses, so each seed's gradient is its own loss's gradient;
  Adam is elementwise, so one Adam over the stacked parameters is S independent Adams.

Each seed's checkpoint is written in the one format (its own network, optimiser state and random
state), so a batched run resumes batched *or* alone, and the reverse. Results equal runs of their
own up to floating-point rounding (batched and single matrix products round differently).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import methods, models
from ..data import Split
from ..models.bag_of_words import BagOfWords, mean_bag
from ..stacking import linear, stack_modules, unstack_into
from ..tasks import Predictor, Task
from . import distributed
from .build import make_optimizer, make_scheduler, parameter_groups
from .config import RunConfig
from .loop import SeedRun, load_state

#: Backbones whose layers the grouped forward pass knows (a Sequential of these layer types; the
#: bag of words first averages each seed's own embedding table, :func:`stacked_bag_of_words`).
STACKED_MODELS = ("mlp", "cnn", "bag_of_words")
_MODEL_CLASSES = (models.MLP, models.CNN, BagOfWords, models.FeatureHead)
_LAYERS = (nn.Flatten, nn.Linear, nn.ReLU, nn.Conv2d, nn.MaxPool2d)


class BatchedConfigError(ValueError):
    """The configs given to the batched trainer cannot train as one batched run."""


def unsupported_reason(config: RunConfig) -> str | None:
    """Why the seeds of ``config`` cannot train stacked, or None if they can."""
    if not config.model.freeze and config.model.name not in STACKED_MODELS:
        return (
            f"model {config.model.name!r} is not batched (batched models: {', '.join(STACKED_MODELS)}, "
            "or any backbone with model.freeze)"
        )
    if not config.model.freeze and config.model.dense is not None:
        return "model.dense on a trained backbone runs in the sequential trainer only (frozen: batched)"
    try:
        method_class = methods.method_class(config.method.name)
    except ValueError as error:
        return str(error)
    if not method_class.stackable:
        return f"method {config.method.name!r} does not run on stacked seeds (its class is not stackable)"
    augment = config.data.augment
    if augment.crop_padding or augment.flip or augment.mean is not None:
        return "data augmentation runs in the sequential trainer only"
    if config.train.precision != "fp32":
        return f"precision {config.train.precision!r} runs in the sequential trainer only"
    if config.train.channels_last or config.train.compile:
        return "channels_last and compile are options of the sequential trainer"
    if config.train.early_stopping is not None:
        return "early stopping stops each seed at its own check; the batched trainer steps its seeds together"
    if config.train.clip_grad_norm is not None:
        return "gradient clipping (train.clip_grad_norm) runs in the sequential trainer only"
    if distributed.current().world_size > 1:
        return "several processes (torchrun) split one run's batches in the sequential trainer"
    return None


def supports_batched(config: RunConfig) -> bool:
    """Whether the seeds of ``config`` can train batched (MLP, CNN or bag of words, fp32, no augmentation)."""
    return unsupported_reason(config) is None


def backbone_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of an MLP, CNN or bag of words (its hidden layers), checked to be ones the grouped
    forward pass implements."""
    layers = getattr(model, "layers", None)
    if not isinstance(model, _MODEL_CLASSES) or not isinstance(layers, nn.Sequential):
        raise BatchedConfigError(f"{type(model).__name__} is not a backbone the batched trainer can stack")
    flat = True  # whether activations are (N, features) at this point, as a Linear needs
    for layer in layers:
        if not isinstance(layer, _LAYERS):
            raise BatchedConfigError(f"the batched trainer cannot stack a {type(layer).__name__} layer")
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            raise BatchedConfigError("the batched trainer stacks only Flatten(start_dim=1)")
        if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros"):
            raise BatchedConfigError("the batched trainer stacks only ungrouped, zero-padded convolutions")
        if isinstance(layer, nn.Linear) and not flat:
            raise BatchedConfigError("the batched trainer needs a Flatten before a Linear layer")
        flat = isinstance(layer, (nn.Flatten, nn.Linear)) or (flat and isinstance(layer, nn.ReLU))
    if not flat:
        raise BatchedConfigError("the batched trainer needs a backbone that ends in (N, features)")
    return list(layers)


def stacked_features(layers: list[nn.Module], params: dict[str, Tensor], images: Tensor) -> Tensor:
    """Features ``(S, B, d)`` of a batch ``(S, B, *input_shape)``, row ``s`` through seed ``s``.

    ``params`` holds each layer's stacked ``model.layers.<i>.weight`` / ``.bias``.
    """
    num_seeds, batch = images.shape[:2]
    x = images
    # Convolutions run on (B, S*C, H, W), each seed's channels a group; the rest on (S, B, ...).
    grouped = False
    for i, layer in enumerate(layers):
        weight = params.get(f"model.layers.{i}.weight")
        bias = params.get(f"model.layers.{i}.bias")
        if isinstance(layer, nn.Conv2d):
            if not grouped:
                x = x.transpose(0, 1).reshape(batch, -1, *x.shape[3:])
                grouped = True
            x = F.conv2d(
                x,
                weight.flatten(0, 1),
                None if bias is None else bias.flatten(),
                layer.stride,
                layer.padding,
                layer.dilation,
                groups=num_seeds,
            )
        elif isinstance(layer, nn.MaxPool2d):
            x = layer(x) if grouped else layer(x.flatten(0, 1)).unflatten(0, (num_seeds, batch))
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        elif isinstance(layer, nn.Flatten):
            x = x.reshape(batch, num_seeds, -1).transpose(0, 1) if grouped else x.flatten(2)
            grouped = False
        else:  # nn.Linear, on (S, B, in)
            x = linear(x, weight, bias)
    return x


def stacked_bag_of_words(
    model: BagOfWords, layers: list[nn.Module], params: dict[str, Tensor], ids: Tensor
) -> Tensor:
    """Features ``(S, B, d)`` of word ids ``(S, B, L)``: each seed's mean bag from its own table
    (``model.embedding.weight`` stacked, ``(S, V + buckets, d)``), then the hidden layers."""
    table = params["model.embedding.weight"]
    bags = mean_bag(ids, table, model.vocabulary_size, model.bigram_buckets)
    return stacked_features(layers, params, bags)


class Stacked:
    """Runs of one config over several seeds, at the same step, trained side by side.

    ``params`` holds every parameter stacked, under the names the runs' own networks use
    (``model.layers.1.weight``, ``method.heads.weight``); seed ``s``'s parameter and Adam
    state are row ``s``.
    """

    def __init__(self, runs: list[SeedRun], task: Task, device: torch.device) -> None:
        self.runs = runs
        self.task = task
        self.layers = backbone_layers(runs[0].model)
        self.method = stack_modules([run.method for run in runs])
        self.method.train()
        own = [dict(run.network.named_parameters()) for run in runs]
        backbone = {
            name: torch.stack([params[name].detach() for params in own])
            .contiguous()
            .requires_grad_(param.requires_grad)
            for name, param in own[0].items()
            if name.startswith("model.")
        }
        self.bag_of_words = runs[0].model if isinstance(runs[0].model, BagOfWords) else None
        known = ("model.layers.", "model.embedding.") if self.bag_of_words else ("model.layers.",)
        unknown = [name for name in backbone if not name.startswith(known)]
        if unknown:
            raise BatchedConfigError(f"parameters {unknown} lie outside the backbone's layers")
        stacked = {**backbone, **{f"method.{name}": p for name, p in self.method.named_parameters()}}
        # The runs' own parameter order: a run's optimiser state is indexed by position.
        self.params = {name: stacked[name] for name in own[0]}
        config = runs[0].config
        self.optimizer = make_optimizer(config, parameter_groups(config, self.params.items()))
        self.scheduler = make_scheduler(config, self.optimizer)
        # Adam and schedule as a run of its own has them: they carry each run's state into
        # and out of its checkpoint in the one format.
        self.own_optimizers = [
            make_optimizer(config, parameter_groups(config, run.network.named_parameters())) for run in runs
        ]
        if runs[0].checkpoint is not None:
            self._restore()

    # ------------------------------------------------------------------ checkpoints

    def _restore(self) -> None:
        """Put the runs' resumed Adam states (from their checkpoints) into the stacked Adam."""
        for run, own in zip(self.runs, self.own_optimizers):
            load_state(run.folder, "optimizer", own, run.checkpoint)
        self.scheduler.load_state_dict(self.runs[0].checkpoint["scheduler"])
        _copy_learning_rates(self.own_optimizers[0], self.optimizer)
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
        _copy_learning_rates(self.optimizer, own)
        for stacked, param in zip(_in_order(self.optimizer), _in_order(own)):
            state = self.optimizer.state.get(stacked)
            if state:
                own.state[param] = {key: _seed_entry(value, s) for key, value in state.items()}
        try:
            return {
                "network": run.network.state_dict(),
                "optimizer": own.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": run.rng_state,
            }
        finally:
            own.state.clear()

    # ------------------------------------------------------------------ training

    def epoch_orders(self, epoch: int, split: Split, batch_size: int) -> Tensor:
        return torch.stack(
            [self.task.epoch_order(split, run.config.seed, epoch, batch_size) for run in self.runs]
        )

    def step(self, split: Split, index: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        inputs, targets = self.task.batch(split, index)
        features, targets = self.task.rows(self.features(inputs), targets)
        out = self.method(features, targets, index=index if self.method.needs_index else None)
        self.optimizer.zero_grad(set_to_none=True)
        # Summed, each seed's gradient is exactly its own loss's gradient.
        out.loss.sum().backward()
        self.optimizer.step()
        return out.loss.detach(), out.terms

    def features(self, inputs: Tensor) -> Tensor:
        """The backbone's features ``(S, B, d)``, seed ``s``'s inputs through seed ``s``'s backbone."""
        if self.bag_of_words is not None:
            return stacked_bag_of_words(self.bag_of_words, self.layers, self.params, inputs)
        return stacked_features(self.layers, self.params, inputs)

    def on_epoch_end(self) -> None:
        self.method.on_epoch_end()
        self.scheduler.step()

    @torch.no_grad()
    def sync(self) -> None:
        for s, run in enumerate(self.runs):
            for name, param in run.model.named_parameters():
                param.copy_(self.params[f"model.{name}"][s])
        unstack_into(self.method, [run.method for run in self.runs])

    def predictor(self, s: int) -> Predictor:
        run = self.runs[s]
        return Predictor(run.network, run.model, run.method)


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


def _copy_learning_rates(source: torch.optim.Optimizer, target: torch.optim.Optimizer) -> None:
    """Each group's current and initial learning rate (the schedule's), from one Adam to its twin."""
    for from_group, to_group in zip(source.param_groups, target.param_groups):
        for key in ("lr", "initial_lr"):
            if key in from_group:
                to_group[key] = from_group[key]
