"""Seconds per epoch of label_embedding over onehot, same model, same process, alternating runs.

    LABELEMB_DATA=../shared/data python bench/overhead.py --models mlp cnn
    python bench/overhead.py --models resnet8          # CIFAR-10-shaped synthetic data
    LABELEMB_DATA=../shared/data python bench/overhead.py --models mlp --compile
    LABELEMB_DATA=../shared/data python bench/overhead.py --models mlp \
        --methods onehot label_embedding label_embedding:fast_path=false   # what the fast path buys
    LABELEMB_DATA=../shared/data python bench/overhead.py --models mlp --methods onehot \
        label_embedding label_embedding:fast_path=fused onehot:train.cuda_graphs=true   # a spec's train.*

A step is the trainer's own (:class:`labelemb.training.single.Single`, Adam as ``--adam``, default
the trainer's fused kernel). Each round times ``--steps`` training steps of every method in turn
(after a warm-up), so all see the same machine state; the figure is the ratio of the medians.
Seconds per epoch are the
median step time times the steps of one epoch of the protocol (MNIST 55,000 / 100 = 550;
CIFAR 50,000 / 128 = 391). The MLP and CNN run on real MNIST batches; ResNet-8 on random
3 x 32 x 32 images with 10 classes and the CIFAR augmentation, since only the shape matters.

One further round times the three phases of a step apart (forward of backbone and method,
backward, optimiser step), to show where a method's extra time goes. ``--compile`` also times
each method run through ``torch.compile`` (the backbone stays eager: compiled, this MLP's steps
got slower on our CPU), in the same rounds; ratios stay against the first method, eager. On CPU
it needs a C++ compiler; compiling happens in the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from labelemb.config import parse_override
from labelemb.data import Dataset, Split, load_dataset
from labelemb.training import Classification, build_config, build_run, epoch_permutation
from labelemb.training.determinism import use_deterministic_kernels
from labelemb.training.recipe import lay_out
from labelemb.training.single import Single

SETTINGS = {
    # model config, batch size, steps per epoch, default steps per round
    "mlp": ({"name": "mlp", "hidden": [500, 500]}, 100, 550, 200),
    "cnn": ({"name": "cnn"}, 100, 550, 40),
    "resnet8": ({"name": "resnet8"}, 128, 391, 3),
}
CIFAR_AUGMENT = {
    "crop_padding": 4,
    "flip": True,
    "mean": [0.4914, 0.4822, 0.4465],
    "std": [0.2023, 0.1994, 0.2010],
}


def synthetic_cifar(size: int = 2048) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(size, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (size,), generator=generator)
    split = Split(images, labels)
    return Dataset("cifar10-synthetic", split, None, split, [f"class{i}" for i in range(10)])


def time_steps(run: Single, split: Split, order: torch.Tensor, steps: int, batch_size: int) -> float:
    """Seconds per training step (the trainer's), averaged over ``steps`` consecutive steps."""
    if split.images.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(steps):
        index = order[(step * batch_size) % (len(order) - batch_size) :][:batch_size]
        run.step(split, index[None])
    if split.images.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def time_phases(
    run: Single, split: Split, order: torch.Tensor, steps: int, batch_size: int
) -> dict[str, float]:
    """Seconds per step in forward, backward and the optimiser step: the trainer's step, cut in three."""
    optimizer = run.optimizer
    cuda = split.images.device.type == "cuda"
    totals = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    for step in range(steps):
        index = order[(step * batch_size) % (len(order) - batch_size) :][:batch_size]
        start = now()
        out = run.forward(split, index)
        forward_end = now()
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        backward_end = now()
        optimizer.step()
        step_end = now()
        totals["forward"] += forward_end - start
        totals["backward"] += backward_end - forward_end
        totals["optimizer"] += step_end - backward_end
    return {phase: total / steps for phase, total in totals.items()}


def build_runs(
    model_name: str, dataset: Dataset, specs: list[str], device: str, adam: str = "fused"
) -> dict[str, Single]:
    """The trainer's layout of one run for each method spec (``name:option=value,train.key=value``)."""
    model_config, batch_size, _, _ = SETTINGS[model_name]
    augment = CIFAR_AUGMENT if model_name == "resnet8" else {}
    runs = {}
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-overhead-")  # empty: nothing to resume
    for method_spec in specs:
        method_name, _, option_text = method_spec.partition(":")
        given = dict(parse_override(item) for item in option_text.split(",") if item)
        # train.KEY=VALUE in a spec is a setting of the run's training (train.cuda_graphs=true).
        train = {key.removeprefix("train."): v for key, v in given.items() if key.startswith("train.")}
        options = {key: v for key, v in given.items() if not key.startswith("train.")}
        config = build_config(
            {
                "output_dir": output_dir,
                "model": model_config,
                "method": {"name": method_name, **options},
                "data": {"augment": augment},
                "train": {"batch_size": batch_size, "device": device, "adam": adam, **train},
            }
        )
        task = Classification()
        runs[method_spec] = lay_out(
            [build_run(config, dataset, torch.device(device), task)], task, torch.device(device)
        )
    os.rmdir(output_dir)
    return runs


def measure(
    model_name: str,
    dataset: Dataset,
    methods: list[str],
    rounds: int,
    steps: int,
    device: str,
    compile_method: bool = False,
    adam: str = "fused",
) -> dict:
    _, batch_size, steps_per_epoch, _ = SETTINGS[model_name]
    runs = build_runs(model_name, dataset, methods, device, adam)
    if compile_method:
        for spec in methods:
            compiled = build_runs(model_name, dataset, [spec], device, adam)[spec]
            compiled.method = torch.compile(compiled.method)  # the backbone stays eager
            runs[f"{spec} (compiled)"] = compiled
    split = Split(dataset.train.images.to(device), dataset.train.labels.to(device))
    order = epoch_permutation(0, 0, len(split)).to(device)
    for run in runs.values():  # warm-up: allocator, kernels, thread pools
        time_steps(run, split, order, max(steps // 5, 1), batch_size)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(time_steps(run, split, order, steps, batch_size))
    result = {
        name: {
            "seconds_per_step": statistics.median(t),
            "seconds_per_epoch": statistics.median(t) * steps_per_epoch,
            "phases": time_phases(runs[name], split, order, steps, batch_size),
        }
        for name, t in times.items()
    }
    base = result[methods[0]]["seconds_per_step"]  # the first method, eager
    for name in runs:
        result[name]["ratio"] = result[name]["seconds_per_step"] / base
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=list(SETTINGS))
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["onehot", "label_embedding"],
        help="method names, each optionally with options: label_embedding:fast_path=false",
    )
    parser.add_argument(
        "--adam", choices=["fused", "classic"], default="fused", help="train.adam (default fused)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--steps", type=int, default=0, help="steps per round (default 200 MLP, 40 CNN, 3 ResNet-8)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--compile", action="store_true", help="also time each method under torch.compile")
    parser.add_argument(
        "--deterministic",
        choices=["true", "false"],
        default="true",
        help="train.deterministic for every run (default true, as the trainer's default)",
    )
    args = parser.parse_args()
    use_deterministic_kernels(args.deterministic == "true")
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {args.device}, Adam {args.adam}, deterministic {args.deterministic}"
    )
    print(f"machine: {machine}")
    report = {"machine": machine, "models": {}}
    for model_name in args.models:
        dataset = synthetic_cifar() if model_name == "resnet8" else load_dataset("mnist")
        steps = args.steps or SETTINGS[model_name][3]
        result = measure(
            model_name, dataset, args.methods, args.rounds, steps, args.device, args.compile, args.adam
        )
        report["models"][model_name] = result
        for name, figures in result.items():
            phases = " ".join(f"{k} {v * 1e3:.3f}" for k, v in figures["phases"].items())
            print(
                f"{model_name:8s} {name:26s} {figures['seconds_per_step'] * 1e3:9.3f} ms/step "
                f"{figures['seconds_per_epoch']:9.2f} s/epoch  ratio {figures['ratio']:.3f}  "
                f"(ms: {phases})"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
