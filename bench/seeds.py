"""Many seeds of the MNIST MLP: batched (one process, stacked parameters) vs one after another.

    LABELEMB_DATA=../shared/data python bench/seeds.py                # 20 seeds x 100 steps, MNIST
    python bench/seeds.py --dataset digits --steps 50                 # a quick run, no files needed

The paper's MNIST MLP protocol (784-500-500 ReLU, Adam lr 1e-3, batch 100; the method is
``--method``, default label_embedding), but for a fixed number of training steps per seed
(``--steps``, default 100) rather than 15 epochs, to keep the benchmark short; evaluation and
file writing are left out, as they are the same work either way. All ways run in the same
process and use the trainer's own steps: one after another is the step of one run
(:class:`labelemb.training.single.Single`) on each seed in turn (each seed all its steps, as the
sequential trainer runs), with the trainer's default fused Adam and, as a third row, with the
classic Adam (``train.adam=classic``), so that the gain of stacking is told apart from the gain of
the optimiser kernel; batched is the step of :class:`labelemb.training.stacked.Stacked` (what
``--batched`` trains with) on all seeds at once, fused Adam. Each round times every way (after a
warm-up); the figures are the medians over ``--rounds``.

GFLOP/s are counted by hand from the matrix products of a step, per seed and example: forward
``2 sum(in * out)`` over the backbone's layers and the method's output layers, the same again for
the weight gradients, and the input gradients of every layer but the first (the images need none)
plus one output layer (label_embedding's o2 sees detached features). Softmaxes, ReLUs and the Adam
update are not counted, so the figures slightly understate the work done. The machine's peak is
measured, not looked up: the best of a few ``torch.mm`` of two 4096 x 4096 float32 matrices on
the threads the benchmark runs with. On a shared machine the load average (printed) moves every
figure, the peak included; there, ``--threads 1`` keeps idle-waiting threads out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any

import torch
from torch import nn

from labelemb.data import load_dataset
from labelemb.methods import LabelEmbedding, Method
from labelemb.training import Classification, build_config, build_run, epoch_permutation
from labelemb.training.recipe import lay_out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gflops(device: torch.device, size: int = 4096, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s of one float32 ``size x size`` matrix product: the machine's peak."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(model: nn.Module, method: Method, batch_size: int) -> int:
    """Matrix-product FLOPs of one training step of one seed (see the module docstring)."""
    backbone = [m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    heads = [m.in_features * m.out_features for m in method.modules() if isinstance(m, nn.Linear)]
    forward = sum(backbone) + sum(heads)
    weight_grads = forward
    # The first layer's input is the images (no gradient); only the predicting output layer reaches
    # the features: label_embedding's o1, the first half of its one o1-and-o2 layer.
    predicting = max(heads, default=0) // (2 if isinstance(method, LabelEmbedding) else 1)
    input_grads = sum(backbone[1:]) + predicting
    return 2 * batch_size * (forward + weight_grads + input_grads)


class Orders:
    """Each seed's training order, ``epoch_permutation(seed, epoch)``, in full batches."""

    def __init__(self, num_train: int, batch_size: int, device: torch.device) -> None:
        self.batches = num_train // batch_size  # full batches only: every step has the same work
        self.num_train, self.batch_size, self.device = num_train, batch_size, device
        self.cache: dict[tuple[int, int], torch.Tensor] = {}

    def index(self, seed: int, step: int) -> torch.Tensor:
        epoch, batch = divmod(step, self.batches)
        if (seed, epoch) not in self.cache:
            self.cache[(seed, epoch)] = epoch_permutation(seed, epoch, self.num_train).to(self.device)
        return self.cache[(seed, epoch)][batch * self.batch_size : (batch + 1) * self.batch_size]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100, help="training steps per seed and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per seed before the rounds")
    parser.add_argument("--method", default="label_embedding")
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--dataset", default="mnist", help="mnist (from $LABELEMB_DATA) or digits")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = load_dataset(args.dataset)
    split = type(dataset.train)(dataset.train.images.to(device), dataset.train.labels.to(device))
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-seeds-")  # empty: no checkpoint to resume

    def config(seed: int, adam: str = "fused"):
        return build_config(
            {
                "seed": seed,
                "output_dir": output_dir,
                "data": {"name": args.dataset},
                "model": {"name": "mlp", "hidden": args.hidden},
                "method": {"name": args.method},
                "train": {
                    "batch_size": args.batch_size,
                    "lr": 1e-3,
                    "device": str(device),
                    "adam": adam,
                    "progress": False,
                },
            }
        )

    seeds = list(range(args.seeds))
    orders = Orders(len(split), args.batch_size, device)

    task = Classification()
    # One after another: each seed its own run, as the sequential trainer builds it.
    sequential = {
        adam: [
            lay_out([build_run(config(seed, adam), dataset, device, task)], task, device) for seed in seeds
        ]
        for adam in ("fused", "classic")
    }
    first = sequential["fused"][0].runs[0]
    flops = step_flops(first.model, first.method, args.batch_size)
    seq_steps = {adam: [0] * len(seeds) for adam in sequential}

    def run_sequential(adam: str, steps: int) -> float:
        sync(device)
        start = time.perf_counter()
        for s, run in enumerate(sequential[adam]):
            for _ in range(steps):
                run.step(split, orders.index(seeds[s], seq_steps[adam][s])[None])
                seq_steps[adam][s] += 1
        sync(device)
        return time.perf_counter() - start

    # Batched: the same seeds stacked.
    stack = lay_out([build_run(config(seed), dataset, device, task) for seed in seeds], task, device)
    os.rmdir(output_dir)  # only ever read (for checkpoints to resume): still empty
    batched_step = 0

    def run_batched(steps: int) -> float:
        nonlocal batched_step
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            stack.step(split, torch.stack([orders.index(seed, batched_step) for seed in seeds]))
            batched_step += 1
        sync(device)
        return time.perf_counter() - start

    ways = {
        "one after another": lambda steps: run_sequential("fused", steps),
        "  with classic Adam": lambda steps: run_sequential("classic", steps),
        "batched": run_batched,
    }
    for run in ways.values():
        run(args.warmup)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, run in ways.items():
            times[name].append(run(args.steps))
    peak = peak_gflops(device)

    total_flops = flops * len(seeds) * args.steps
    rows: dict[str, dict[str, float]] = {}
    for name, values in times.items():
        seconds = statistics.median(values)
        rows[name] = {
            "seconds": seconds,
            "seed_steps_per_second": len(seeds) * args.steps / seconds,
            "gflops": total_flops / seconds / 1e9,
            "fraction_of_peak": total_flops / seconds / 1e9 / peak,
        }
    speedup = rows["one after another"]["seconds"] / rows["batched"]["seconds"]
    speedup_classic = rows["  with classic Adam"]["seconds"] / rows["batched"]["seconds"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, {device}, load average {load:.2f}"
    )
    layers = "-".join(str(d) for d in [split.images[0].numel(), *args.hidden])
    print(f"machine: {machine}")
    print(
        f"{args.dataset} MLP {layers}, {args.method}, {len(seeds)} seeds x {args.steps} steps of batch "
        f"{args.batch_size}, median of {args.rounds} rounds; {flops / 1e6:.1f} MFLOP per seed-step"
    )
    print(f"{'':20s} {'seconds':>9s} {'seed-steps/s':>13s} {'GFLOP/s':>9s} {'of peak':>8s}")
    for name, row in rows.items():
        print(
            f"{name:20s} {row['seconds']:9.2f} {row['seed_steps_per_second']:13.1f} "
            f"{row['gflops']:9.1f} {row['fraction_of_peak']:8.1%}"
        )
    print(
        f"speed-up of batched: {speedup:.2f}x over the sequential trainer's steps, "
        f"{speedup_classic:.2f}x over them with classic Adam"
    )
    print(f"peak (best torch.mm of 4096 x 4096 float32): {peak:.1f} GFLOP/s")
    if args.json:
        report: dict[str, Any] = {
            "machine": machine,
            "dataset": args.dataset,
            "layers": layers,
            "method": args.method,
            "seeds": len(seeds),
            "steps": args.steps,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "mflop_per_seed_step": flops / 1e6,
            "peak_gflops": peak,
            "speedup": speedup,
            "speedup_over_classic_adam": speedup_classic,
            "times": times,
            "rows": rows,
        }
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
