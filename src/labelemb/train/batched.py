"""Many seeds of one run in one process: the seeds' parameters stacked, one step trains them all.

The paper ran every setting over 20 seeds. A step of a small model on one seed's batch of 100 is
many small operations, each paying a fixed cost (Python, dispatch, a kernel launch on a GPU,
an optimiser pass over a few small tensors), so :func:`train_batched` trains S seeds side by
side, each operation covering all of them (DESIGN.md, "Performance principles"):

- Each seed is built exactly as :func:`labelemb.train.train` builds it (``seed_everything(seed)``
  then :func:`~labelemb.train.loop.build_network`), so the initialisations are the sequential ones.
- The backbone's parameters are stacked along a new leading seed dimension and run as grouped
  layers: a fully connected layer is one batched matrix product over the seeds, a convolution
  one grouped convolution (``groups=S``).
- The method (the output layers and the loss): onehot, label_smoothing, confidence_penalty,
  tfkd_reg and label_embedding (released and paper variants, full embedding) run for all seeds
  at once too (:data:`VECTORISED_HEADS`), on the stacked output layers; the tests hold them to
  the methods' own results. Every other method, and these whenever a batch could hold a label
  the methods would reject or ignore, stays each seed's own module, called on its seed's
  features with its parameters swapped for that seed's slice of the stacked ones
  (:func:`torch.func.functional_call`): buffers (OLS, LWR, LwAL state) stay per seed, and the
  method runs its own code. Per seed, a head is some thirty small operations: on the 2-core CPU
  here, looping over 20 label_embedding heads took about 15 % of an MNIST MLP step, the
  vectorised head a few per cent.
- Each seed keeps its own data order (``epoch_permutation(seed, epoch, n)``): a step gathers an
  ``(S, B, ...)`` batch, row ``s`` being seed ``s``'s batch.
- The loss is the sum of the seeds' losses, so each seed's gradient is its own loss's gradient;
  Adam is elementwise, so one Adam over the stacked parameters is S independent Adams.

Each seed's run folder is written as the sequential trainer writes it (same files, same
checkpoint format), so a batched run resumes batched *or* sequentially, and a sequential
checkpoint resumes batched. Results equal sequential runs up to floating-point rounding (batched
and single matrix products, and the fused Adam kernel, round differently in the last bit).

Timing: each seed's ``train_seconds`` and ``wall_seconds`` are its 1/S share of the batched
run's time (the cost of one model), and ``summary.json`` gains ``batched_seeds`` = S.

Speed (bench/seeds.py): on a 2-core CPU the matrix products of the MNIST MLP already run as
fast one seed at a time; most of the gain there is the fused Adam kernel, which one large
update over the stacked parameters can use. The fixed costs that stacking removes weigh far more
on a GPU.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from .. import methods, models
from ..data import Dataset, Split, load_dataset
from . import distributed
from .config import RunConfig
from .io import write_jsonl
from .loop import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    Network,
    Progress,
    TermSums,
    _check_run_dir,
    _diff_keys,
    _load_checkpoint,
    _save_checkpoint,
    advance,
    build_network,
    error_rate,
    prepare_run_dir,
    progress_record,
    resolve_device,
    schedule,
    summarize,
    train,
    write_results,
)
from .seed import epoch_permutation, seed_everything

logger = logging.getLogger(__name__)

#: Backbones whose layers the grouped forward pass knows (a Sequential of these layer types).
BATCHED_MODELS = ("mlp", "cnn")
_MODEL_CLASSES = (models.MLP, models.CNN)
#: Methods checked to give the sequential results batched (tests/test_batched.py). A method joins
#: once it is: one that drew random numbers in ``forward`` would share the process's generator.
BATCHED_METHOD_CLASSES: tuple[type[methods.Method], ...] = (
    methods.OneHot,
    methods.LabelEmbedding,
    methods.LabelEmbeddingFixed,
    methods.LabelSmoothing,
    methods.ConfidencePenalty,
    methods.TfKDReg,
    methods.OnlineLabelSmoothing,
    methods.LearningWithRetrospection,
    methods.LearningWithAdaptiveLabels,
    methods.StaticLabel,
)
_LAYERS = (nn.Flatten, nn.Linear, nn.ReLU, nn.Conv2d, nn.MaxPool2d)


class BatchedConfigError(ValueError):
    """The configs given to :func:`train_batched` cannot train as one batched run."""


# ---------------------------------------------------------------- which runs can be batched


def unsupported_reason(config: RunConfig) -> str | None:
    """Why ``config`` cannot train batched, or None if it can."""
    if config.model.name not in BATCHED_MODELS:
        return f"model {config.model.name!r} is not batched (batched models: {', '.join(BATCHED_MODELS)})"
    try:
        method_class = methods.method_class(config.method.name)
    except ValueError as error:
        return str(error)
    if method_class not in BATCHED_METHOD_CLASSES:
        return f"method {config.method.name!r} has not been checked to train batched"
    augment = config.data.augment
    if augment.crop_padding or augment.flip or augment.mean is not None:
        return "data augmentation runs in the sequential trainer only"
    if config.train.precision != "fp32":
        return f"precision {config.train.precision!r} runs in the sequential trainer only"
    if config.train.channels_last or config.train.compile:
        return "channels_last and compile are options of the sequential trainer"
    if distributed.current().world_size > 1:
        return "several processes (torchrun) split one run's batches in the sequential trainer"
    return None


def supports_batched(config: RunConfig) -> bool:
    """Whether the seeds of ``config`` can train batched (MLP or CNN, fp32, no augmentation).

    Every method of the registry does (each seed keeps its own method module and buffers);
    the ResNets (batch norm), augmentation, bf16, ``channels_last`` and ``compile`` do not.
    """
    return unsupported_reason(config) is None


def _without_seed(config: RunConfig) -> dict[str, Any]:
    values = config.model_dump(mode="json")
    values.pop("seed")
    return values


def check_batchable(configs: Sequence[RunConfig]) -> None:
    """Raise :class:`BatchedConfigError` unless ``configs`` are one supported run over distinct seeds."""
    if not configs:
        raise BatchedConfigError("train_batched needs at least one config")
    seeds = [c.seed for c in configs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise BatchedConfigError(f"seed(s) {repeated} appear more than once; each batched seed must differ")
    first = _without_seed(configs[0])
    for config in configs[1:]:
        other = _without_seed(config)
        if other != first:
            keys = ", ".join(sorted(_diff_keys(first, other)))
            raise BatchedConfigError(
                f"configs of seed {configs[0].seed} and seed {config.seed} differ in {keys}; a batched "
                "run trains one config over several seeds, so only `seed` may differ "
                "(use train_seeds to group configs, or train them separately)"
            )
    reason = unsupported_reason(configs[0])
    if reason is not None:
        raise BatchedConfigError(
            f"cannot train batched: {reason}; use train_seeds to fall back to sequential"
        )


# ---------------------------------------------------------------- one seed, as the sequential trainer has it


@dataclass
class _Seed:
    """One seed's own modules and files; its parameters' live values sit in the stack."""

    config: RunConfig
    run_dir: Path
    model: nn.Module
    method: methods.Method
    network: Network
    #: Adam and schedule as the sequential trainer builds them: they only carry this seed's
    #: state into and out of a checkpoint in the sequential format.
    optimizer: torch.optim.Adam
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    progress: Progress
    #: The global generator's state the sequential run would have (it saves it in checkpoints).
    rng_state: Tensor
    wall_at_start: float = 0.0


def _build_seed(config: RunConfig, dataset: Dataset, device: torch.device) -> _Seed:
    seed_everything(config.seed)
    model, method = build_network(config, dataset)
    network = Network(model, method).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.train.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, config.train.lr_milestones, config.train.lr_gamma
    )
    run_dir = config.run_dir()
    progress = Progress()
    checkpoint = run_dir / CHECKPOINT_FILE
    if checkpoint.exists():
        progress = _load_checkpoint(checkpoint, network, optimizer, scheduler)
    return _Seed(
        config=config,
        run_dir=run_dir,
        model=model,
        method=method,
        network=network,
        optimizer=optimizer,
        scheduler=scheduler,
        progress=progress,
        rng_state=torch.get_rng_state(),
        wall_at_start=progress.wall_seconds,
    )


# ---------------------------------------------------------------- the stacked network


def _backbone_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of an MLP or CNN, checked to be ones the grouped forward pass implements."""
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


class _GroupedLinear(torch.autograd.Function):
    """``y[s] = x[s] W[s]^T + b[s]`` for each seed ``s``: x (S, B, in), W (S, out, in), b (S, out).

    Through plain autograd, ``bmm(x, W^T)`` hands ``W`` its gradient as the transpose of
    ``bmm(x^T, g)``, which then costs a strided copy into the parameter's layout; here it is
    formed as ``bmm(g^T, x)``, already in that layout, and the input gradient is skipped when
    the input needs none (the images).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


#: What a vectorised head returns: each seed's loss ``(S,)`` and logged terms, name -> ``(S,)``.
HeadResult = tuple[Tensor, dict[str, Tensor]]


def _gold(log_p: Tensor, labels: Tensor) -> Tensor:
    """``log_p[s, i, labels[s, i]]`` as ``(S, B)``."""
    return log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _row_mean(values: Tensor) -> Tensor:
    """Per seed, the mean over the batch of ``(S, B)`` values, as ``Rows.mean`` forms it: sum / count."""
    return values.sum(1) / values.shape[1]


def _softmax_head(method: methods.Method) -> Callable[[dict[str, Tensor], Tensor, Tensor], HeadResult]:
    """onehot, label_smoothing, confidence_penalty or tfkd_reg for all seeds: one linear layer
    ``output`` and a loss of ``log_softmax`` rows, each the method's own formula."""
    if isinstance(method, methods.LabelSmoothing):
        epsilon = method.epsilon

        def loss(log_p: Tensor, labels: Tensor) -> HeadResult:
            ce, uniform = _row_mean(-_gold(log_p, labels)), _row_mean(-log_p.mean(-1))
            return (1.0 - epsilon) * ce + epsilon * uniform, {"ce": ce, "uniform": uniform}

    elif isinstance(method, methods.ConfidencePenalty):
        beta = method.beta

        def loss(log_p: Tensor, labels: Tensor) -> HeadResult:
            ce, entropy = _row_mean(-_gold(log_p, labels)), _row_mean(-(log_p.exp() * log_p).sum(-1))
            return ce - beta * entropy, {"ce": ce, "entropy": entropy}

    elif isinstance(method, methods.TfKDReg):
        # The virtual teacher's two values and its negative entropy, as the method computed them.
        t_gold, t_rest, neg_entropy = method._t_gold, method._t_rest, method._neg_entropy
        kl_weight = method.alpha * method.multiplier / method.num_classes
        ce_weight = 1.0 - method.alpha

        def loss(log_p: Tensor, labels: Tensor) -> HeadResult:
            log_p_gold = _gold(log_p, labels)
            ce = _row_mean(-log_p_gold)
            kl = _row_mean(neg_entropy - (t_rest * log_p.sum(-1) + (t_gold - t_rest) * log_p_gold))
            return ce_weight * ce + kl_weight * kl, {"ce": ce, "kl": kl}

    else:  # onehot

        def loss(log_p: Tensor, labels: Tensor) -> HeadResult:
            ce = _row_mean(-_gold(log_p, labels))
            return ce, {"ce": ce}

    def head(params: dict[str, Tensor], features: Tensor, labels: Tensor) -> HeadResult:
        logits = _GroupedLinear.apply(features, params["output.weight"], params["output.bias"])
        losses, terms = loss(F.log_softmax(logits, dim=-1), labels)
        return losses, {name: value.detach() for name, value in terms.items()}

    return head


def _label_embedding_head(
    method: methods.LabelEmbedding,
) -> Callable[[dict[str, Tensor], Tensor, Tensor], HeadResult]:
    """The released (or paper) label-embedding loss for all seeds, through autograd: the
    stop-gradients of the method are ``detach`` here (see :class:`labelemb.methods.LabelEmbedding`)."""
    w_gold, w_soft = method.loss_weights()
    tau, alpha = method.tau, method.alpha

    def head(params: dict[str, Tensor], features: Tensor, labels: Tensor) -> HeadResult:
        # heads rows [:m] are o1, rows [m:] are o2 (see LabelEmbedding.output_layer)
        weight, bias, m = params["heads.weight"], params["heads.bias"], method.num_classes
        z1 = _GroupedLinear.apply(features, weight[:, :m], bias[:, :m])
        z2 = _GroupedLinear.apply(features.detach(), weight[:, m:], bias[:, m:])
        embedding = params["embedding"]  # (S, m, m); e = E[y] per seed
        e = embedding.gather(1, labels.unsqueeze(-1).expand(-1, -1, embedding.shape[-1]))
        log_p1, log_p2, log_q = (F.log_softmax(z, dim=-1) for z in (z1, z2, e))
        log_p2_gold = _gold(log_p2, labels)
        ce_o1 = _row_mean(-_gold(log_p1, labels))
        soft_o1 = _row_mean(-(log_q.detach().exp() * log_p1).sum(-1))
        ce_o2 = _row_mean(-log_p2_gold)
        with torch.no_grad():
            correct = (z2.argmax(-1) == labels).to(z2.dtype)
            mask = correct / (correct.sum(1, keepdim=True) + 1e-8)
            teacher = torch.softmax(z2 / tau, dim=-1)
        emb = -((teacher * log_q).sum(-1) * mask).sum(1)
        penalty = (log_p2_gold.exp() - alpha).clamp(min=0).sum(1)
        losses = w_gold * ce_o1 + w_soft * soft_o1 + ce_o2 + emb + penalty
        terms = (ce_o1, soft_o1, ce_o2, emb, penalty)
        return losses, {name: value.detach() for name, value in zip(methods.label_embedding.TERMS, terms)}

    return head


#: Methods whose loss runs for all seeds at once (label_embedding: released and paper variants
#: with the full m x m embedding; its nlp variant and the compressed embedding loop over seeds).
VECTORISED_HEADS: tuple[type[methods.Method], ...] = (
    methods.OneHot,
    methods.LabelSmoothing,
    methods.ConfidencePenalty,
    methods.TfKDReg,
    methods.LabelEmbedding,
)


def _vectorised_head(
    method: methods.Method,
) -> Callable[[dict[str, Tensor], Tensor, Tensor], HeadResult] | None:
    """The all-seeds loss of ``method``'s kind and settings, or None to loop over the seeds' methods."""
    kind = type(method)
    if kind not in VECTORISED_HEADS:
        return None
    if kind is methods.LabelEmbedding:
        if method.variant not in ("released", "paper") or method.compressed_dim is not None:
            return None
        return _label_embedding_head(method)
    return _softmax_head(method)


class _Stack:
    """The seeds' parameters stacked along dimension 0, with the grouped forward pass.

    Keys are the sequential parameter names (``model.layers.1.weight``, ``method.heads.weight``);
    seed ``s``'s parameter (and its Adam state) is row ``s`` of the stacked tensor.
    """

    def __init__(self, seeds: list[_Seed], vectorise: bool = True) -> None:
        self.seeds = seeds
        self.layers = _backbone_layers(seeds[0].model)
        #: The all-seeds loss, or None: each seed's own method, one after another.
        self.vector_head = _vectorised_head(seeds[0].method) if vectorise else None
        per_seed = [dict(seed.network.named_parameters()) for seed in seeds]
        self.params: dict[str, Tensor] = {}
        for name, first in per_seed[0].items():
            if not name.startswith(("model.layers.", "method.")):
                raise BatchedConfigError(
                    f"parameter {name} lies outside the backbone's layers and the method"
                )
            stacked = self.stack([params[name].detach() for params in per_seed])
            self.params[name] = stacked.requires_grad_(first.requires_grad)
        self.head_names = [name for name in self.params if name.startswith("method.")]

    @staticmethod
    def stack(tensors: Sequence[Tensor]) -> Tensor:
        """One tensor per seed, stacked (a fresh copy)."""
        return torch.stack(list(tensors)).contiguous()

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def backbone(self, images: Tensor) -> Tensor:
        """Features ``(S, B, d)`` of a batch ``(S, B, *input_shape)``, row ``s`` through seed ``s``."""
        num_seeds, batch = images.shape[:2]
        x = images
        # Convolutions run on (B, S*C, H, W), each seed's channels a group; the rest on (S, B, ...).
        grouped = False
        for i, layer in enumerate(self.layers):
            weight = self.params.get(f"model.layers.{i}.weight")
            bias = self.params.get(f"model.layers.{i}.bias")
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
                x = _GroupedLinear.apply(x, weight, bias)
        return x

    def head_stacked(self) -> dict[str, Tensor]:
        """The method's stacked parameters, by the method's own names (``heads.weight``)."""
        return {name[len("method.") :]: self.params[name] for name in self.head_names}

    def head_params(self) -> list[dict[str, Tensor]]:
        """Per seed, its method's parameters as slices of the stacked leaves (``unbind`` keeps
        the backward pass one stacking op per parameter)."""
        slices = {name: self.params[name].unbind(0) for name in self.head_names}
        prefix = len("method.")
        return [{name[prefix:]: slices[name][s] for name in self.head_names} for s in range(len(self.seeds))]

    @torch.no_grad()
    def sync_seeds(self) -> None:
        """Copy the stacked parameters into each seed's own modules (for evaluation and saving)."""
        for s, seed in enumerate(self.seeds):
            for name, param in seed.network.named_parameters():
                param.copy_(self.params[name][s])


def _stacked_adam(params: list[Tensor], lr: float) -> torch.optim.Adam:
    """Adam over the stacked parameters; the fused kernel where the device has one.

    The stacked tensors are S times a model's size, too large to stay in cache across the
    several passes of the unfused update; fused, the update reads and writes each element once.
    """
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _restore_optimizer(stack: _Stack, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Put the seeds' resumed Adam states (from their checkpoints) into the stacked Adam."""
    first = stack.seeds[0]
    scheduler.load_state_dict(first.scheduler.state_dict())
    for key in ("lr", "initial_lr"):
        if key in first.optimizer.param_groups[0]:
            optimizer.param_groups[0][key] = first.optimizer.param_groups[0][key]
    seed_params = [dict(seed.network.named_parameters()) for seed in stack.seeds]
    for name, stacked in stack.params.items():
        states = [seed.optimizer.state.get(params[name]) for seed, params in zip(stack.seeds, seed_params)]
        if not states[0]:
            continue
        state: dict[str, Any] = {}
        for key, value in states[0].items():
            if isinstance(value, Tensor) and value.dim() > 0:
                state[key] = stack.stack([s[key] for s in states]).to(stacked.device)
            elif isinstance(value, Tensor):  # the step count, the same for every seed of a group
                # The fused kernel keeps it on the parameters' device, the plain one on the host.
                on_device = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
                state[key] = value.to(stacked.device, torch.float32) if on_device else value.clone()
            else:
                state[key] = value
        optimizer.state[stacked] = state
    for seed in stack.seeds:
        seed.optimizer.state.clear()


def _seed_state(value: Any, s: int) -> Any:
    """One entry of seed ``s``'s Adam state, as sequential Adam keeps it."""
    if not isinstance(value, Tensor):
        return value
    if value.dim() == 0:  # the step count: sequential (unfused) Adam keeps it on the host
        return value.detach().to("cpu", torch.float32).clone()
    # A clone: saving a view would write the whole stacked storage into every checkpoint.
    return value[s].clone()


def _write_checkpoint(stack: _Stack, s: int, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Seed ``s``'s checkpoint, in the sequential trainer's format (``sync_seeds`` first)."""
    seed = stack.seeds[s]
    for key in ("lr", "initial_lr"):
        if key in optimizer.param_groups[0]:
            seed.optimizer.param_groups[0][key] = optimizer.param_groups[0][key]
    for name, param in seed.network.named_parameters():
        state = optimizer.state.get(stack.params[name])
        if state:
            seed.optimizer.state[param] = {key: _seed_state(value, s) for key, value in state.items()}
    rng = torch.get_rng_state()
    torch.set_rng_state(seed.rng_state)
    try:
        _save_checkpoint(
            seed.run_dir / CHECKPOINT_FILE, seed.network, seed.optimizer, scheduler, seed.progress
        )
    finally:
        torch.set_rng_state(rng)
        seed.optimizer.state.clear()


# ---------------------------------------------------------------- training


def _train_group(
    seeds: list[_Seed],
    dataset: Dataset,
    device: torch.device,
    show_progress: bool,
    on_checkpoint: Callable[[list[Progress]], None] | None,
) -> None:
    """Train seeds that stand at the same step to the end, side by side."""
    config = seeds[0].config
    num_seeds = len(seeds)
    # The vectorised heads skip the methods' per-batch label checks: every label must be a class.
    labels = dataset.train.labels
    stack = _Stack(
        seeds, vectorise=len(labels) > 0 and 0 <= int(labels.min()) <= int(labels.max()) < dataset.num_classes
    )
    optimizer = _stacked_adam(stack.parameters(), config.train.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, config.train.lr_milestones, config.train.lr_gamma
    )
    _restore_optimizer(stack, optimizer, scheduler)
    # Epoch, batch, step and examples are the same for every seed of the group.
    shared = Progress(**{k: getattr(seeds[0].progress, k) for k in ("epoch", "batch", "step", "examples")})

    plan = schedule(config, dataset, device)
    term_sums = TermSums()  # (S,) values: one mean per seed
    needs_index = seeds[0].method.needs_index

    def evaluate() -> None:
        nonlocal term_sums, segment_start
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        train_share = (now - segment_start) / num_seeds
        wall_share = (now - started) / num_seeds
        stack.sync_seeds()
        means = term_sums.means()
        for s, seed in enumerate(seeds):
            progress = seed.progress
            for key in ("epoch", "batch", "step", "examples"):
                setattr(progress, key, getattr(shared, key))
            progress.train_seconds += train_share
            progress.wall_seconds = seed.wall_at_start + wall_share
            record = progress_record(progress, plan.num_train)
            eval_batch = config.train.eval_batch_size
            if plan.dev is not None:
                record["dev_error"] = error_rate(seed.model, seed.method, plan.dev, eval_batch)
            record["test_error"] = error_rate(seed.model, seed.method, plan.test, eval_batch)
            record.update({name: per_seed[s] for name, per_seed in means.items()})
            progress.records.append(record)
            write_jsonl(seed.run_dir / METRICS_FILE, progress.records)
            _write_checkpoint(stack, s, optimizer, scheduler)
        term_sums = TermSums()
        if on_checkpoint is not None:
            on_checkpoint([seed.progress for seed in seeds])
        mean_test_error = statistics.fmean(seed.progress.records[-1]["test_error"] for seed in seeds)
        bar.set_postfix({"mean_test_error": f"{mean_test_error:.2f}"})
        segment_start = time.perf_counter()

    seed_list = _describe_seeds([seed.config.seed for seed in seeds])
    bar = tqdm(
        total=plan.total_steps,
        initial=shared.step,
        desc=f"{config.method.name} seeds {seed_list} (batched)",
        disable=not show_progress,
        dynamic_ncols=True,
        leave=False,
    )
    started = time.perf_counter()
    segment_start = time.perf_counter()
    for seed in seeds:
        seed.network.train()
    with bar:
        while shared.epoch < config.train.epochs:
            orders = torch.stack(
                [epoch_permutation(seed.config.seed, shared.epoch, plan.num_train) for seed in seeds]
            ).to(device)
            for batch in range(shared.batch, plan.batches_per_epoch):
                index = orders[:, batch * plan.batch_size : (batch + 1) * plan.batch_size]
                losses, terms = _train_step(stack, optimizer, plan.train, index, needs_index)
                term_sums.add(losses, terms)
                epoch_ended, due = advance(shared, index.shape[1], plan)
                if epoch_ended:
                    for seed in seeds:
                        seed.method.on_epoch_end()
                    scheduler.step()
                bar.update(1)
                if due:
                    evaluate()

    end = time.perf_counter()
    stack.sync_seeds()
    for seed in seeds:
        seed.progress.wall_seconds = seed.wall_at_start + (end - started) / num_seeds
        num_parameters = sum(p.numel() for p in seed.network.parameters())
        summary = summarize(seed.config, dataset, seed.progress, num_parameters, device)
        summary["processes"] = 1
        summary["batched_seeds"] = num_seeds
        write_results(seed.run_dir, seed.network, seed.method, summary)


def _train_step(
    stack: _Stack, optimizer: torch.optim.Optimizer, split: Split, index: Tensor, needs_index: bool
) -> HeadResult:
    """One optimisation step of every seed; ``index`` is ``(S, B)``, row ``s`` seed ``s``'s batch.

    Returns each seed's loss and logged terms, detached, as ``(S,)`` tensors.
    """
    features = stack.backbone(split.images[index])
    labels = split.labels[index]
    if stack.vector_head is not None:
        losses, terms = stack.vector_head(stack.head_stacked(), features, labels)
    else:
        outs = []
        for s, (seed, params, rows) in enumerate(zip(stack.seeds, stack.head_params(), features.unbind(0))):
            kwargs = {"index": index[s] if needs_index else None}
            outs.append(functional_call(seed.method, params, (rows, labels[s]), kwargs))
        losses = torch.stack([out.loss for out in outs])
        terms = {name: torch.stack([out.terms[name] for out in outs]) for name in outs[0].terms}
    optimizer.zero_grad(set_to_none=True)
    # Summed, each seed's gradient is exactly its own loss's gradient.
    losses.sum().backward()
    optimizer.step()
    return losses.detach(), terms


def _describe_seeds(seeds: list[int]) -> str:
    """``0-19`` for a run of consecutive seeds, else the list: ``0,2,5``."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(seed) for seed in seeds)


def _without_progress_bar(config: RunConfig) -> RunConfig:
    return config.model_copy(update={"train": config.train.model_copy(update={"progress": False})})


def train_batched(
    configs: Sequence[RunConfig],
    *,
    dataset: Dataset | None = None,
    progress: bool = True,
    on_checkpoint: Callable[[list[Progress]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the seeds of one config side by side in this process; return their summaries in order.

    ``configs`` must differ only in ``seed`` (else :class:`BatchedConfigError`) and be
    :func:`supported <supports_batched>`. Each seed's run folder gets what
    :func:`labelemb.train.train` writes, with the same numbers up to floating-point rounding.
    A seed whose run finished is read back, not retrained; seeds with checkpoints (from a batched
    or a sequential run) resume from them, those at the same step side by side. A seed left
    alone at its step trains with the sequential trainer. ``on_checkpoint`` is called with the
    seeds' progress after each evaluation's checkpoints of a side-by-side group are on disk.
    """
    check_batchable(configs)
    config = configs[0]
    summaries: dict[int, dict[str, Any]] = {}
    pending: list[RunConfig] = []
    for run in configs:
        run_dir = run.run_dir()
        resolved = run.model_dump(mode="json")
        _check_run_dir(run_dir, resolved)
        if (run_dir / SUMMARY_FILE).exists():
            summaries[run.seed] = json.loads((run_dir / SUMMARY_FILE).read_text())
            continue
        pending.append(run)
    if pending:
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        device = resolve_device(config.train.device)
        if dataset is None:
            dataset = load_dataset(config.data.name, data_dir=config.data.dir, download=config.data.download)
        # Built (and checkpoints read) before any folder is made: a config that fails to build
        # leaves nothing behind, as with the sequential trainer.
        seeds = [_build_seed(run, dataset, device) for run in pending]
        for seed in seeds:
            prepare_run_dir(seed.run_dir, seed.config.model_dump(mode="json"))
        # A crash between two seeds' checkpoint writes leaves them a check apart: each step's
        # seeds train together.
        groups: dict[int, list[_Seed]] = {}
        for seed in seeds:
            groups.setdefault(seed.progress.step, []).append(seed)
        for group in groups.values():
            if len(group) == 1:
                quiet = group[0].config if progress else _without_progress_bar(group[0].config)
                summaries[group[0].config.seed] = train(quiet, dataset=dataset)
                continue
            _train_group(group, dataset, device, progress and config.train.progress, on_checkpoint)
            for seed in group:
                summaries[seed.config.seed] = json.loads((seed.run_dir / SUMMARY_FILE).read_text())
    return [summaries[run.seed] for run in configs]


def train_seeds(
    configs: Sequence[RunConfig],
    *,
    batched: bool = True,
    dataset: Dataset | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every config; return the summaries in order.

    With ``batched``, configs that differ only in ``seed`` train side by side with
    :func:`train_batched` when :func:`supports_batched` allows; the others (and every config
    without ``batched``) train one after another with :func:`labelemb.train.train`, with a
    logged note saying why.
    """
    summaries: dict[int, dict[str, Any]] = {}
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(json.dumps(_without_seed(config), sort_keys=True), []).append(i)
    for members in groups.values():
        group = [configs[i] for i in members]
        reason = unsupported_reason(group[0]) if batched else None
        seeds = [c.seed for c in group]
        if batched and reason is None and len(set(seeds)) == len(seeds) and len(group) > 1:
            for i, summary in zip(members, train_batched(group, dataset=dataset, progress=progress)):
                summaries[i] = summary
            continue
        if batched and reason is not None:
            logger.warning("%s seeds %s train one after another: %s", group[0].method.name, seeds, reason)
        for i, config in zip(members, group):
            summaries[i] = train(config if progress else _without_progress_bar(config), dataset=dataset)
    return [summaries[i] for i in range(len(configs))]


__all__ = [
    "BATCHED_METHOD_CLASSES",
    "BATCHED_MODELS",
    "VECTORISED_HEADS",
    "BatchedConfigError",
    "check_batchable",
    "supports_batched",
    "train_batched",
    "train_seeds",
    "unsupported_reason",
]
