"""Whole training steps of the CPU text configs: label_embedding against onehot, timed and counted.

    python bench/seq2seq_step.py                       # both DDTP configs, 30 batches x 3 rounds
    python bench/seq2seq_step.py --configs configs/ddtp-en-it.yaml --batches 10 --rounds 2

For each config, the model and both methods are built as ``labelemb train`` builds them, and the
same real training batches (the first ``--batches`` of epoch 0, in the trainer's order) run through
a whole step each: forward, the method's loss, backward, gradient clipping and Adam. The methods
alternate batch by batch for ``--rounds`` rounds after a warm-up round; a method's time is the median
over rounds of its summed step time. Reported: label_embedding / onehot, next to the ratio of the
FLOPs of one step of each counted by ``torch.utils.flop_counter.FlopCounterMode`` (every matrix
product of forward and backward, the LSTMs' included, since on the CPU they run as matrix
products, and the chunked heads' in-place accumulations) on the same batches. Time the ratio on
an idle machine: it is a ratio within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from labelemb.assembly.build import Network, build_network, load_run_data, make_optimizer, run_model
from labelemb.tasks import build_task
from labelemb.training import load_config, seed_everything
from labelemb.training.flops import IN_PLACE_PRODUCTS

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def build_step(config, dataset, task, device: str = "cpu"):
    """A function that makes one whole training step on a batch, as the trainer does."""
    seed_everything(config.seed)
    model, method = build_network(config, dataset)
    network = Network(model, method, rows=task.rows).to(device)
    network.train()
    optimizer = make_optimizer(config, list(network.parameters()))

    def step(inputs, targets) -> None:
        features, rows = task.rows(run_model(model, inputs), targets)
        loss = method(features, rows).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.train.clip_grad_norm or float("inf"))
        optimizer.step()

    return step


def on(device: str, batch):
    """A batch's tensors (a tuple of inputs, and targets) on ``device``."""
    inputs, targets = batch
    inputs = tuple(t.to(device) for t in inputs) if isinstance(inputs, tuple) else inputs.to(device)
    return inputs, targets.to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(config_path: str, batches: int, rounds: int, data_dir: str, device: str = "cpu") -> dict:
    base = load_config(config_path, [f"data.dir={data_dir}", "train.progress=false"])
    dataset = load_run_data(base)
    task = build_task(base, dataset)
    order = task.epoch_order(dataset.train, base.seed, 0, base.train.batch_size)
    data = [
        on(
            device,
            task.batch(dataset.train, order[i * base.train.batch_size : (i + 1) * base.train.batch_size]),
        )
        for i in range(batches)
    ]
    tokens = sum(int((targets != 0).sum()) for _, targets in data)
    steps = {
        name: build_step(base.with_method(name), dataset, task, device)
        for name in ("onehot", "label_embedding")
    }
    flops = {}
    for name, step in steps.items():
        with FlopCounterMode(display=False, custom_mapping=IN_PLACE_PRODUCTS) as counter:
            for inputs, targets in data[:3]:
                step(inputs, targets)
        flops[name] = counter.get_total_flops()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(rounds + 1):
        spent = dict.fromkeys(steps, 0.0)
        for inputs, targets in data:
            for name, step in steps.items():
                sync(device)
                start = time.perf_counter()
                step(inputs, targets)
                sync(device)
                spent[name] += time.perf_counter() - start
        if round_:  # the first round warms up
            for name in steps:
                times[name].append(spent[name])
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "config": config_path,
        "batches": batches,
        "target_tokens": tokens,
        "vocabulary": dataset.num_classes,
        "onehot_ms_per_step": 1000 * median["onehot"] / batches,
        "label_embedding_ms_per_step": 1000 * median["label_embedding"] / batches,
        "time_ratio": median["label_embedding"] / median["onehot"],
        "flop_ratio": flops["label_embedding"] / flops["onehot"],
        "onehot_gflop_per_step": flops["onehot"] / 3 / 1e9,
        "threads": torch.get_num_threads(),
        "device": device,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", nargs="+", default=["configs/ddtp-summarize.yaml", "configs/ddtp-en-it.yaml"]
    )
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", default=str(DATA))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    results = [measure(path, args.batches, args.rounds, args.data_dir, args.device) for path in args.configs]
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, {args.device}"
    )
    print("| config | V | ms / step onehot | ms / step label_embedding | time ratio | counted FLOP ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {Path(r['config']).stem} | {r['vocabulary']:,} | {r['onehot_ms_per_step']:.0f} "
            f"| {r['label_embedding_ms_per_step']:.0f} | {r['time_ratio']:.2f} | {r['flop_ratio']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
