"""The training loop: whole dataset on the device, index-sliced batches, periodic evaluation,
atomic checkpoints, and a run folder a later command can read back."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import methods, models
from ..data import Dataset, Split, load_dataset
from ..data.augment import Augment
from . import distributed
from .config import RunConfig
from .io import atomic_write, remove_stale_temporaries, save_torch, write_json, write_jsonl, write_text
from .seed import epoch_permutation, seed_everything

CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.pt"
REPRESENTATION_FILE = methods.label_embedding_fixed.EMBEDDING_FILE
CHECKPOINT_FORMAT = 1


class RunDirError(RuntimeError):
    """The run folder holds something this run must not overwrite or cannot resume from."""


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


@dataclass
class Schedule:
    """A run's data on its device and the step arithmetic the sequential and batched loops share."""

    train: Split
    dev: Split | None
    test: Split
    batch_size: int
    eval_every: int | None  # examples between checks; None: at each epoch's end
    epochs: int

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.num_train / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.batches_per_epoch * self.epochs


def schedule(config: RunConfig, dataset: Dataset, device: torch.device) -> Schedule:
    """Move the dataset's splits to ``device`` and take batch size, checks and epochs from ``config``."""
    return Schedule(
        train=_to_device(dataset.train, device),
        dev=_to_device(dataset.dev, device),
        test=_to_device(dataset.test, device),
        batch_size=config.train.batch_size,
        eval_every=config.train.eval_every,
        epochs=config.train.epochs,
    )


def advance(progress: Progress, examples: int, plan: Schedule) -> tuple[bool, bool]:
    """Count one finished step of ``examples`` examples; return (epoch ended, evaluation due).

    Evaluation is due every ``plan.eval_every`` examples (at each epoch's end when None) and at the end.
    """
    before = progress.examples
    progress.step += 1
    progress.examples += examples
    progress.batch += 1
    epoch_ended = progress.batch == plan.batches_per_epoch
    if epoch_ended:
        progress.epoch += 1
        progress.batch = 0
    every = plan.eval_every
    due = (progress.examples // every > before // every) if every else epoch_ended
    return epoch_ended, due or progress.step == plan.total_steps


class TermSums:
    """The loss and the logged terms, summed over the steps since the last check.

    Kept as one stacked tensor, so a step costs one addition however many terms a method logs;
    values of shape ``(S,)`` (the batched trainer's seeds) stack to ``(terms, S)``.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.total: Tensor | None = None
        self.steps = 0

    def add(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        values = torch.stack([loss.detach(), *terms.values()]).float()
        if self.total is None:
            self.names, self.total = ["loss", *terms], values
        else:
            self.total = self.total + values
        self.steps += 1

    def means(self) -> dict[str, Any]:
        """``train_<name>`` -> mean per step (a list with one mean per seed for ``(S,)`` values)."""
        if self.total is None:
            return {}
        steps = max(self.steps, 1)
        return {
            f"train_{name}": [v / steps for v in total] if isinstance(total, list) else total / steps
            for name, total in zip(self.names, self.total.tolist())
        }


def progress_record(progress: Progress, num_train: int) -> dict[str, Any]:
    """The position and time fields that open each line of ``metrics.jsonl``."""
    return {
        "step": progress.step,
        "epoch": progress.examples / num_train,
        "examples": progress.examples,
        "wall_seconds": progress.wall_seconds,
        "train_seconds": progress.train_seconds,
    }


def prepare_run_dir(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Create the run folder, clear torn temporaries, and write its ``config.yaml`` once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        write_text(run_dir / CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))


def write_results(run_dir: Path, network: nn.Module, method: methods.Method, summary: dict[str, Any]) -> None:
    """A finished run's files: label representation, weights, and last the summary (it marks the run done)."""
    save_label_representation(run_dir, method)
    save_torch(run_dir / MODEL_FILE, network.state_dict())
    write_json(run_dir / SUMMARY_FILE, summary)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available; use train.device=cpu")
    return device


def build_network(config: RunConfig, dataset: Dataset) -> tuple[nn.Module, methods.Method]:
    """The backbone and the method of a run; the released output-layer init unless set."""
    model = models.build_model(config.model.name, dataset.input_shape, **config.options("model"))
    options = config.options("method")
    accepted = methods.options(config.method.name)
    # What a method may need to know of the run, given only to the methods that ask for it.
    context = {
        "init_std": getattr(model, "output_init_std", None),
        "num_examples": len(dataset.train),
        "epochs": config.train.epochs,
        "class_names": list(dataset.class_names),
    }
    for key, value in context.items():
        if key in accepted and key not in options:
            options[key] = value
    method = methods.build(
        config.method.name, in_features=model.out_features, num_classes=dataset.num_classes, **options
    )
    return model, method


@dataclass
class StepOptions:
    """How a batch reaches the network: augmentation and numeric precision."""

    augment: Augment | None = None
    generator: torch.Generator | None = None  # drives the augmentation; checkpointed
    autocast: torch.dtype | None = None  # bf16 or None
    channels_last: bool = False

    def prepare(self, images: Tensor, train: bool) -> Tensor:
        if self.augment is not None:
            images = self.augment(images, self.generator) if train else self.augment(images, train=False)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def precision(self, device: torch.device) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)


@torch.inference_mode()
def error_rate(
    model: nn.Module,
    method: methods.Method,
    split: Split,
    batch_size: int,
    options: StepOptions | None = None,
) -> float:
    """Percentage of ``split`` whose argmax prediction is wrong."""
    options = options or StepOptions()
    model.eval()
    method.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=split.images.device)
    for start in range(0, len(split), batch_size):
        images = options.prepare(split.images[start : start + batch_size], train=False)
        labels = split.labels[start : start + batch_size]
        with options.precision(images.device):
            logits = method.logits(model(images))
        wrong += (logits.argmax(-1) != labels).sum()
    model.train()
    method.train()
    return 100.0 * wrong.item() / len(split)


class Network(nn.Module):
    """Backbone and method as one module: what an optimiser and DistributedDataParallel wrap."""

    def __init__(self, model: nn.Module, method: methods.Method) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, images: Tensor, labels: Tensor, index: Tensor | None = None) -> methods.MethodOutput:
        return self.method(self.model(images), labels, index=index if self.method.needs_index else None)


def train_step(
    model: nn.Module,
    method: methods.Method,
    optimizer: torch.optim.Optimizer,
    split: Split,
    index: Tensor,
    options: StepOptions | None = None,
    network: nn.Module | None = None,
) -> methods.MethodOutput:
    """One optimisation step on the examples ``split[index]``.

    ``network`` (a :class:`Network`, possibly wrapped in DistributedDataParallel) runs the
    forward pass when given; otherwise ``model`` then ``method``.
    """
    out = step_forward(model, method, split, index, options, network)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    optimizer.step()
    return out


def step_forward(
    model: nn.Module,
    method: methods.Method,
    split: Split,
    index: Tensor,
    options: StepOptions | None = None,
    network: nn.Module | None = None,
) -> methods.MethodOutput:
    """The forward pass of a training step on ``split[index]`` (see :func:`train_step`)."""
    options = options or StepOptions()
    images = options.prepare(split.images[index], train=True)
    with options.precision(images.device):
        if network is not None:
            return network(images, split.labels[index], index)
        features = model(images)
        return method(features, split.labels[index], index=index if method.needs_index else None)


def step_options(config: RunConfig, seed: int) -> StepOptions:
    """The batch pipeline a config asks for; the augmentation generator is seeded by the run."""
    spec = config.data.augment
    augment = None
    if spec.crop_padding or spec.flip or spec.mean is not None:
        augment = Augment(crop_padding=spec.crop_padding, flip=spec.flip, mean=spec.mean, std=spec.std)
    return StepOptions(
        augment=augment,
        generator=torch.Generator().manual_seed(seed + 7_919) if augment is not None else None,
        autocast=torch.bfloat16 if config.train.precision == "bf16" else None,
        channels_last=config.train.channels_last,
    )


def _to_device(split: Split | None, device: torch.device) -> Split | None:
    if split is None:
        return None
    return Split(images=split.images.to(device), labels=split.labels.to(device))


def _check_run_dir(run_dir: Path, resolved: dict[str, Any]) -> None:
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.exists():
        return
    # Validating fills in keys added to the config since that run was written, with their defaults.
    saved = RunConfig.model_validate(yaml.safe_load(saved_path.read_text())).model_dump(mode="json")
    if _comparable(saved) != _comparable(resolved):
        changed = sorted(_diff_keys(_comparable(saved), _comparable(resolved)))
        raise RunDirError(
            f"{run_dir} already holds a run with a different config (differs in: {', '.join(changed)}). "
            "Nothing was overwritten: choose another output_dir or experiment name, or delete that folder."
        )


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that change results (not progress bars or output paths)."""
    config = {**config, "train": {**config.get("train", {})}}
    config.pop("output_dir", None)
    config["train"].pop("progress", None)
    config["data"] = {k: v for k, v in config.get("data", {}).items() if k not in ("dir", "download")}
    return config


def _diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys: set[str] = set()
        for key in set(a) | set(b):
            keys |= _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return keys
    return set() if a == b else {prefix.rstrip(".")}


def _load_checkpoint(
    path: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator | None = None,
) -> Progress:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a torn or foreign file: say which and what to do
        raise RunDirError(
            f"cannot read checkpoint {path} ({error}); delete it to start this run afresh"
        ) from None
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(
            f"{path} is not a labelemb checkpoint of format {CHECKPOINT_FORMAT}; delete it to start afresh"
        )
    try:
        network.load_state_dict(checkpoint["network"])
        # A different parameter layout (another model, or a run of an older labelemb whose
        # method kept its layers apart) shows up here even when the weights could be mapped.
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError) as error:
        raise RunDirError(
            f"checkpoint {path} was written by a different model, method or labelemb version and "
            f"cannot be resumed:\n{error}\nUse another output_dir, or delete the checkpoint to start afresh."
        ) from None
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["torch_rng"])
    if generator is not None and "augment_rng" in checkpoint:
        generator.set_state(checkpoint["augment_rng"])
    return Progress(**checkpoint["progress"])


def _save_checkpoint(
    path: Path,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: Progress,
    generator: torch.Generator | None = None,
) -> None:
    save_torch(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "network": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **({"augment_rng": generator.get_state()} if generator is not None else {}),
            "progress": asdict(progress),
        },
    )


def save_label_representation(run_dir: Path, method: methods.Method) -> None:
    """Write the method's label representation (and, for label_embedding, the raw ``E``)."""
    tensors: dict[str, Tensor] = {}
    representation = method.label_representation()
    if representation is not None:
        tensors["representation"] = representation.detach().float().cpu().contiguous()
    if isinstance(method, methods.LabelEmbedding) and method.num_classes <= 4096:
        tensors[methods.label_embedding_fixed.EMBEDDING_KEY] = (
            method.embedding_matrix().float().cpu().contiguous()
        )
    if tensors:
        atomic_write(run_dir / REPRESENTATION_FILE, lambda tmp: save_file(tensors, str(tmp)))


def summarize(
    config: RunConfig, dataset: Dataset, progress: Progress, num_parameters: int, device: torch.device
) -> dict[str, Any]:
    records = progress.records
    final = records[-1]
    if config.selection == "best_dev" and dataset.dev is not None:
        # The first check that reaches the lowest dev error, as early stopping would pick.
        selected = min(records, key=lambda r: (r["dev_error"], r["step"]))
    else:
        selected = final
    return {
        "experiment": config.experiment,
        "method": config.method.name,
        "seed": config.seed,
        "dataset": dataset.name,
        "model": config.model.name,
        "selection": config.selection if dataset.dev is not None else "final",
        "selected_test_error": selected["test_error"],
        "selected_dev_error": selected.get("dev_error"),
        "selected_step": selected["step"],
        "selected_epoch": selected["epoch"],
        "final_test_error": final["test_error"],
        "final_dev_error": final.get("dev_error"),
        "epochs": config.train.epochs,
        "steps": progress.step,
        "seconds_per_epoch": progress.train_seconds / config.train.epochs,
        "wall_seconds": progress.wall_seconds,
        "num_parameters": num_parameters,
        "class_names": list(dataset.class_names),
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def train(
    config: RunConfig,
    *,
    dataset: Dataset | None = None,
    on_checkpoint: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Train one (method, seed) run to the end, resuming from its checkpoint if one exists.

    Writes ``config.yaml``, ``metrics.jsonl`` (one line per evaluation), ``summary.json``, the
    label representation, and ``checkpoint.pt`` under :meth:`RunConfig.run_dir`; returns the summary.
    ``on_checkpoint`` is called after every checkpoint is safely on disk.
    """
    run_dir = config.run_dir()
    resolved = config.model_dump(mode="json")
    _check_run_dir(run_dir, resolved)
    summary_path = run_dir / SUMMARY_FILE
    if summary_path.exists():
        return json.loads(summary_path.read_text())

    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    processes = distributed.current()
    device = resolve_device(config.train.device)
    if device.type == "cuda" and processes.world_size > 1:
        device = torch.device("cuda", processes.local_rank)
    if dataset is None:
        dataset = load_dataset(config.data.name, data_dir=config.data.dir, download=config.data.download)
    seed_everything(config.seed)
    model, method = build_network(config, dataset)
    network = Network(model, method).to(device)
    options = step_options(config, seed=config.seed)
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.train.lr)
    # What runs the training steps; ``method`` itself stays the module (on_epoch_end, logits).
    stepping_method = method
    if config.train.compile:
        # The method's label check stays eager (see Method.check_inputs); the rest is compiled.
        model = torch.compile(model)
        stepping_method = torch.compile(method)  # type: ignore[assignment]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, config.train.lr_milestones, config.train.lr_gamma
    )
    stepper: nn.Module | None = None
    if processes.world_size > 1:
        # Buffers stay per process: methods all-reduce their own statistics (OLS counts, ...),
        # which broadcasting process 0's buffers before every step would overwrite.
        stepper = nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    writes = processes.is_main

    if writes:
        prepare_run_dir(run_dir, resolved)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    progress = Progress()
    if checkpoint_path.exists():
        progress = _load_checkpoint(checkpoint_path, network, optimizer, scheduler, options.generator)

    plan = schedule(config, dataset, device)
    term_sums = TermSums()

    def evaluate() -> None:
        nonlocal term_sums, segment_start
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        progress.train_seconds += now - segment_start
        progress.wall_seconds = now - started
        record = progress_record(progress, plan.num_train)
        if plan.dev is not None:
            record["dev_error"] = error_rate(model, method, plan.dev, config.train.eval_batch_size, options)
        record["test_error"] = error_rate(model, method, plan.test, config.train.eval_batch_size, options)
        record.update(term_sums.means())
        term_sums = TermSums()
        progress.records.append(record)
        if writes:
            write_jsonl(run_dir / METRICS_FILE, progress.records)
            _save_checkpoint(checkpoint_path, network, optimizer, scheduler, progress, options.generator)
        bar.set_postfix({k: f"{record[k]:.2f}" for k in ("dev_error", "test_error") if k in record})
        if on_checkpoint is not None:
            on_checkpoint(progress)
        segment_start = time.perf_counter()

    bar = tqdm(
        total=plan.total_steps,
        initial=progress.step,
        desc=f"{config.method.name} seed{config.seed}",
        disable=not (config.train.progress and writes),
        dynamic_ncols=True,
        leave=False,
    )
    started = time.perf_counter() - progress.wall_seconds
    # Training time excludes evaluation and checkpointing; it is read at each evaluation so
    # that no per-step device synchronisation is needed.
    segment_start = time.perf_counter()
    network.train()
    with bar:
        while progress.epoch < config.train.epochs:
            order = epoch_permutation(config.seed, progress.epoch, plan.num_train).to(device)
            for batch in range(progress.batch, plan.batches_per_epoch):
                index = order[batch * plan.batch_size : (batch + 1) * plan.batch_size]
                out = train_step(
                    model, stepping_method, optimizer, plan.train, processes.shard(index), options, stepper
                )
                term_sums.add(out.loss, out.terms)
                epoch_ended, due = advance(progress, len(index), plan)
                if epoch_ended:
                    method.on_epoch_end()
                    scheduler.step()
                bar.update(1)
                if due:
                    evaluate()

    progress.wall_seconds = time.perf_counter() - started
    summary = summarize(config, dataset, progress, sum(p.numel() for p in network.parameters()), device)
    summary["processes"] = processes.world_size
    if writes:
        write_results(run_dir, network, method, summary)
    return summary
