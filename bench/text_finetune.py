"""What fine-tuning all-MiniLM-L6-v2 end to end costs on debian-sections, against its frozen head.

    LABELEMB_DATA=DATA_DIR python bench/text_finetune.py --out text-finetune.json
    LABELEMB_DATA=DATA_DIR python bench/text_finetune.py --rounds 3 --steps 2 --device cuda

The protocol is ``configs/lwal-debian-sections-minilm.yaml``'s (``--config``; its data, batches of
128 texts cut to 128 word pieces, its epochs and checks) with ``model.freeze: false``: the encoder
trains at its own rate ``model.lr`` (``--encoder-lr``, default 2e-5), the dense layer and the
method's head at the config's ``train.lr``. Each method (``--methods``; onehot, label_smoothing and
label_embedding) is a run as the trainer builds it, stepped by the trainer's own step
(:class:`labelemb.training.single.Single`: the encoder in training mode, the head, backward, fused
Adam), on the real training texts in the order of epoch 0 of seed 0. After ``--warmup`` untimed
steps each (the allocator, the thread pools, Adam's state), each of ``--rounds`` rounds times
``--steps`` consecutive batches for every method in turn, the same batches for each, the next round
the next batches; the figure is the median over the rounds.

The frozen head: the texts of the first ``--frozen-batches`` batches go through the encoder in eval
mode as ``model.freeze: true`` computes its cached features (:func:`~labelemb.assembly.freeze_features`,
into a temporary cache that is removed); that call gives the encoder's eval rate in texts per
second (loading and hashing the encoder included: a rate that errs low). A frozen run of each
method then steps on those features (dense layer and head only), timed the same way with
``--frozen-steps`` steps a round (its rows repeat: a step costs the same whichever rows it reads).

Nothing here trains an epoch: an epoch is the median step times the batches of one epoch, a run
is that times the config's epochs, and the comparison ``--seeds`` seeds of every method run one
after the other. A run's checks (every ``train.eval_every`` examples and at the end, dev and test
through the encoder in eval mode) are estimated apart, at the measured eval rate, and so is the
frozen comparison's one pass over every split. The JSON holds every round, the estimates, whether
the comparison fits in ``--budget-hours`` (default 2), the machine and the load average (before
and after: the figures of a busy machine are slower than an idle one's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from frozen import cache_folder, machine_facts, time_steps, trainer  # the image benchmark's

from labelemb.assembly.build import load_run_data
from labelemb.assembly.frozen import freeze_features
from labelemb.config import RunConfig
from labelemb.tasks import Task, build_task
from labelemb.training import load_config
from labelemb.training.single import Single

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "lwal-debian-sections-minilm.yaml"
METHODS = ("onehot", "label_smoothing", "label_embedding")


# --- arithmetic ----------------------------------------------------------------------------------


def checks_per_run(train_texts: int, epochs: int, eval_every: int | None) -> int:
    """The checks the trainer makes in a run: one each time the examples seen cross a multiple of
    ``eval_every`` (each epoch's end when None), and one at the end if that was not one of them."""
    if eval_every is None:
        return epochs
    seen = train_texts * epochs
    return seen // eval_every + (1 if seen % eval_every else 0)


def estimate(
    step_seconds: dict[str, float],
    *,
    train_texts: int,
    batch_size: int,
    epochs: int,
    seeds: int,
    checks: int,
    check_texts: int,
    eval_texts_per_second: float,
    budget_hours: float,
) -> dict[str, Any]:
    """The epoch, the run and the whole comparison (every method, ``seeds`` runs each, one after
    the other) from each method's median step; checks (``checks`` a run, ``check_texts`` texts
    each) at the eval rate, apart; ``fits`` whether training and checks stay within the budget."""
    steps = math.ceil(train_texts / batch_size)
    check_hours = checks * check_texts / eval_texts_per_second / 3600
    methods = {
        method: {
            "seconds_per_step": seconds,
            "seconds_per_epoch": seconds * steps,
            "hours_per_run": seconds * steps * epochs / 3600,
        }
        for method, seconds in step_seconds.items()
    }
    training = seeds * sum(figures["hours_per_run"] for figures in methods.values())
    checking = seeds * len(methods) * check_hours
    return {
        "steps_per_epoch": steps,
        "epochs": epochs,
        "seeds": seeds,
        "methods": methods,
        "checks_per_run": checks,
        "check_hours_per_run": check_hours,
        "comparison_training_hours": training,
        "comparison_check_hours": checking,
        "comparison_hours": training + checking,
        "budget_hours": budget_hours,
        "fits": training + checking <= budget_hours,
    }


# --- timing --------------------------------------------------------------------------------------


def interleaved(
    runs: dict[str, Single], split: Any, order: torch.Tensor, args: argparse.Namespace, steps: int
) -> dict[str, list[float]]:
    """Each run's seconds per step in every round, the rounds interleaved between the runs after
    ``--warmup`` untimed steps each; round ``r`` steps the same batches for every run."""
    for run in runs.values():
        time_steps(run, split, order, 0, args.warmup, args.batch_size)
    seconds: dict[str, list[float]] = {method: [] for method in runs}
    for number in range(args.rounds):
        first = args.warmup + number * steps
        for method, run in runs.items():
            seconds[method].append(time_steps(run, split, order, first, steps, args.batch_size))
    return seconds


# --- setup ---------------------------------------------------------------------------------------


def run_config(args: argparse.Namespace, method: str, freeze: bool, output_dir: str) -> RunConfig:
    """The config's run of ``method``, fine-tuned (the encoder at ``--encoder-lr``) or frozen."""
    overrides = [
        f"method.name={method}",
        f"model.freeze={str(freeze).lower()}",
        *([] if freeze else [f"model.lr={args.encoder_lr}"]),
        f"train.device={args.device}",
        "train.progress=false",
        f"output_dir={output_dir}",
        *([f"data.dir={args.data_dir}"] if args.data_dir else []),
        *args.overrides,
    ]
    return load_config(args.config, overrides)


def batch_widths(task: Task, split: Any, order: torch.Tensor, batches: range, batch_size: int) -> list[int]:
    """The word pieces each of these batches is padded to (the batch's longest text)."""
    widths = []
    for number in batches:
        inputs, _ = task.batch(split, order[number * batch_size : (number + 1) * batch_size])
        widths.append(int(inputs.shape[-1]))
    return widths


# --- the two measurements ------------------------------------------------------------------------


def measure_fine_tuning(
    dataset: Any, task: Task, args: argparse.Namespace, output_dir: str
) -> dict[str, Any]:
    """Median seconds of each method's fine-tuning step, the same batches for each, interleaved."""
    device = torch.device(args.device)
    runs = {
        method: trainer(run_config(args, method, False, output_dir), dataset, task, device)
        for method in args.methods
    }
    split = dataset.train.to(device)
    order = task.epoch_order(split, 0, 0, args.batch_size).to(device)
    seconds = interleaved(runs, split, order, args, args.steps)
    timed = range(args.warmup, args.warmup + args.rounds * args.steps)
    return {
        "rounds": seconds,
        "median": {method: statistics.median(times) for method, times in seconds.items()},
        "batch_widths": batch_widths(task, split, order, timed, args.batch_size),
    }


def measure_frozen(dataset: Any, task: Task, args: argparse.Namespace, output_dir: str) -> dict[str, Any]:
    """The features of the first batches' texts as a frozen run computes them (seconds, texts per
    second), then each method's frozen step on them, interleaved; median seconds."""
    device = torch.device(args.device)
    configs = {method: run_config(args, method, True, output_dir) for method in args.methods}
    order = task.epoch_order(dataset.train, 0, 0, args.batch_size)
    rows = order[: args.frozen_batches * args.batch_size]
    train = dataset.train
    subset = type(train)(train.inputs[rows], train.labels[rows], train.lengths[rows])
    source = dataclasses.replace(dataset, train=subset, dev=None, test=None)
    with tempfile.TemporaryDirectory(prefix="labelemb-bench-text-finetune-cache-") as folder:
        with cache_folder(Path(folder)):
            start = time.perf_counter()
            frozen = freeze_features(configs[args.methods[0]], source, task, device)
            seconds = time.perf_counter() - start
    runs = {method: trainer(config, frozen, task, device) for method, config in configs.items()}
    split = frozen.train.to(device)
    steps = interleaved(runs, split, torch.arange(len(split), device=device), args, args.frozen_steps)
    return {
        "texts": len(subset),
        "feature_seconds": seconds,
        "eval_texts_per_second": len(subset) / seconds,
        "rounds": steps,
        "median": {method: statistics.median(times) for method, times in steps.items()},
    }


# --- report --------------------------------------------------------------------------------------


def load_average() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def print_report(report: dict[str, Any]) -> None:
    fine, frozen = report["fine_tuned"], report["frozen"]
    print(
        f"\n{report['train_texts']:,} training texts, batches of {report['batch_size']} "
        f"({fine['steps_per_epoch']} steps an epoch), {fine['epochs']} epochs, "
        f"{fine['checks_per_run']} checks a run; load average {report['load_average']['before']:.2f} "
        f"before, {report['load_average']['after']:.2f} after\n"
    )
    print("| method | fine-tuned s / step | s / epoch (scaled) | frozen head s / step | ratio |")
    print("|---|---:|---:|---:|---:|")
    for method, figures in fine["methods"].items():
        head = frozen["methods"][method]["seconds_per_step"]
        print(
            f"| {method} | {figures['seconds_per_step']:.2f} | {figures['seconds_per_epoch']:,.0f} "
            f"| {head:.4f} | {figures['seconds_per_step'] / head:,.0f}x |"
        )
    verdict = "fits" if fine["fits"] else "does not fit"
    print(
        f"\n{len(fine['methods'])} methods x {fine['seeds']} seeds fine-tuned: "
        f"{fine['comparison_training_hours']:,.1f} h of steps + {fine['comparison_check_hours']:,.1f} h "
        f"of checks = {fine['comparison_hours']:,.1f} h: {verdict} in {fine['budget_hours']:g} h"
    )
    print(
        f"frozen: the encoder's eval pass at {report['eval_texts_per_second']:.1f} texts / s, every "
        f"split once {report['frozen_feature_hours']:.2f} h, then "
        f"{frozen['comparison_training_hours']:.3f} h of head steps for the same comparison"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each method in the estimate")
    parser.add_argument("--encoder-lr", type=float, default=2e-5, help="model.lr: the encoder's rate")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1, help="fine-tuning steps a method and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each run first")
    parser.add_argument("--frozen-batches", type=int, default=2, help="batches whose features are computed")
    parser.add_argument("--frozen-steps", type=int, default=20, help="frozen head steps a method and round")
    parser.add_argument("--budget-hours", type=float, default=2.0)
    parser.add_argument("--data-dir", help="data.dir (default: $LABELEMB_DATA and the usual places)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value (after the config's)")
    args = parser.parse_args(argv)
    for name in ("seeds", "rounds", "steps", "warmup", "frozen_batches", "frozen_steps", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    return args


def run(args: argparse.Namespace, output_dir: str) -> dict[str, Any]:
    """Both measurements and the estimates, as the JSON holds them."""
    before = load_average()
    base = run_config(args, args.methods[0], False, output_dir)
    args.batch_size = base.train.batch_size
    dataset = load_run_data(base)
    task = build_task(base, dataset)
    train_texts = len(dataset.train)
    check_texts = sum(len(split) for split in (dataset.dev, dataset.test) if split is not None)
    fine = measure_fine_tuning(dataset, task, args, output_dir)
    frozen = measure_frozen(dataset, task, args, output_dir)
    rate = frozen["eval_texts_per_second"]
    common: dict[str, Any] = {
        "train_texts": train_texts,
        "batch_size": args.batch_size,
        "epochs": base.train.epochs,
        "seeds": args.seeds,
        "eval_texts_per_second": rate,
        "budget_hours": args.budget_hours,
    }
    checks = checks_per_run(train_texts, base.train.epochs, base.train.eval_every)
    fine.update(estimate(fine["median"], checks=checks, check_texts=check_texts, **common))
    # A frozen run's checks read cached features: their cost is the head's, left out here.
    frozen.update(estimate(frozen["median"], checks=0, check_texts=0, **common))
    features = (train_texts + check_texts) / rate / 3600  # every split through the encoder once
    return {
        "config": str(args.config),
        "encoder_lr": args.encoder_lr,
        "train_lr": base.train.lr,
        "train_texts": train_texts,
        "check_texts": check_texts,
        "batch_size": args.batch_size,
        "eval_texts_per_second": rate,
        "frozen_feature_hours": features,
        "frozen_comparison_hours": features + frozen["comparison_training_hours"],
        "fine_tuned": fine,
        "frozen": frozen,
        "load_average": {"before": before, "after": load_average()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, print the table and the verdict, write the JSON; return what it holds."""
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_facts(torch.device(args.device))
    print(
        f"machine: {machine['processor']}, {machine['cpus']} CPUs, {machine['threads']} threads, "
        f"torch {machine['torch']}, {machine['device']}, load average {load_average():.2f}"
    )
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-text-finetune-runs-")  # empty: nothing to resume
    start = time.perf_counter()
    try:
        report = run(args, output_dir)
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    report["machine"] = machine
    report["wall_seconds"] = time.perf_counter() - start
    report["settings"] = {
        key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
    }
    print_report(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
