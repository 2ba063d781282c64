"""Seconds per training step and per epoch of the bag-of-words backbone, label_embedding over onehot.

    LABELEMB_DATA=../shared/data python bench/bag_of_words.py
    LABELEMB_DATA=../shared/data python bench/bag_of_words.py --threads 1 --rounds 9
    LABELEMB_DATA=../shared/data python bench/bag_of_words.py --bigram-buckets 0 --embedding-dim 32

The data is the real debian-sections set (``$LABELEMB_DATA/debian-sections/{train,validation,
test}.csv.gz``: 48,958 package descriptions, 53 sections), read as the text-classification task
reads it (words, a 50,000-entry vocabulary from train, texts cut to 512 tokens). A step is the
trainer's own (:class:`labelemb.training.single.Single`: the task's length-grouped batch cut to its
longest text, the backbone, the method, backward, fused Adam over every parameter). Each round
times ``--steps`` consecutive batches of the epoch's order for every method in turn, the same
batches for each, and the next round the next stretch of the epoch, so all methods see the same
texts and the same machine state; the figure is the ratio of the median step times. Seconds per
epoch are the median step time times the batches of one epoch (490 of 100).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from labelemb.data.text.classes import TextClassDataset, text_class_dataset
from labelemb.tasks import build_task
from labelemb.training import build_config, build_run
from labelemb.training.recipe import lay_out
from labelemb.training.single import Single

#: The data set's files, in $LABELEMB_DATA/debian-sections: our split name -> file.
FILES = {"train": "train.csv.gz", "dev": "validation.csv.gz", "test": "test.csv.gz"}


def read_split(path: Path) -> tuple[list[str], list[str]]:
    """The texts and labels of one gzip CSV with columns ``text`` and ``label``."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def debian_sections(folder: Path) -> TextClassDataset:
    """debian-sections as the text-classification task reads it, class names sorted from train."""
    raw = {split: read_split(folder / name) for split, name in FILES.items()}
    class_names = sorted(set(raw["train"][1]))
    ids = {name: i for i, name in enumerate(class_names)}
    return text_class_dataset(
        "debian-sections",
        {split: texts for split, (texts, _) in raw.items()},
        {
            split: np.array([ids[label] for label in labels], dtype=np.int64)
            for split, (_, labels) in raw.items()
        },
        class_names,
    )


def build_runs(
    dataset: TextClassDataset, methods: list[str], model: dict, batch_size: int
) -> dict[str, Single]:
    """A fresh run of each method, as the trainer builds it (seed 0)."""
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-bag-of-words-")  # empty: nothing to resume
    device = torch.device("cpu")
    runs = {}
    for method in methods:
        config = build_config(
            {
                "output_dir": output_dir,
                "data": {"name": "files", "files": {"train": "train.csv.gz", "test": "test.csv.gz"}},
                "model": {"name": "bag_of_words", **model},
                "method": {"name": method},
                "train": {"batch_size": batch_size, "device": "cpu"},
            }
        )
        task = build_task(config, dataset)
        runs[method] = lay_out([build_run(config, dataset, device, task)], task, device)
    os.rmdir(output_dir)
    return runs


def time_steps(
    run: Single, dataset: TextClassDataset, order: torch.Tensor, first: int, steps: int, batch_size: int
) -> float:
    """Seconds per training step over ``steps`` consecutive batches of ``order`` from batch ``first``."""
    batches = math.ceil(len(order) / batch_size)
    start = time.perf_counter()
    for step in range(first, first + steps):
        at = (step % batches) * batch_size
        run.step(dataset.train, order[at : at + batch_size][None])
    return (time.perf_counter() - start) / steps


def measure(
    dataset: TextClassDataset, methods: list[str], model: dict, rounds: int, steps: int, batch_size: int
) -> dict[str, dict[str, float]]:
    runs = build_runs(dataset, methods, model, batch_size)
    order = next(iter(runs.values())).task.epoch_order(dataset.train, 0, 0, batch_size)
    for run in runs.values():  # warm-up: allocator, thread pools
        time_steps(run, dataset, order, 0, max(steps // 5, 1), batch_size)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_number in range(rounds):
        for name, run in runs.items():
            times[name].append(time_steps(run, dataset, order, round_number * steps, steps, batch_size))
    steps_per_epoch = math.ceil(len(dataset.train) / batch_size)
    base = statistics.median(times[methods[0]])
    return {
        name: {
            "seconds_per_step": statistics.median(t),
            "seconds_per_epoch": statistics.median(t) * steps_per_epoch,
            "ratio": statistics.median(t) / base,
        }
        for name, t in times.items()
    }


def markdown(result: dict[str, dict[str, float]], baseline: str) -> str:
    lines = [f"| method | ms / step | s / epoch | ratio to {baseline} |", "| --- | ---: | ---: | ---: |"]
    for name, figures in result.items():
        lines.append(
            f"| {name} | {figures['seconds_per_step'] * 1e3:.1f} | {figures['seconds_per_epoch']:.1f} "
            f"| {figures['ratio']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["onehot", "label_embedding"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30, help="steps per round")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, help="model.embedding_dim (default: the model's)")
    parser.add_argument("--bigram-buckets", type=int, help="model.bigram_buckets (default: the model's)")
    parser.add_argument("--hidden", type=int, nargs="*", help="model.hidden (default: the model's)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if "LABELEMB_DATA" not in os.environ:
        parser.error("set LABELEMB_DATA to the folder that holds debian-sections/")
    torch.set_num_threads(args.threads)
    model = {
        key: value
        for key, value in (
            ("embedding_dim", args.embedding_dim),
            ("bigram_buckets", args.bigram_buckets),
            ("hidden", args.hidden),
        )
        if value is not None
    }
    started = time.perf_counter()
    dataset = debian_sections(Path(os.environ["LABELEMB_DATA"]) / "debian-sections")
    loading = time.perf_counter() - started
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, cpu, Adam fused"
    )
    print(f"machine: {machine}")
    print(
        f"data: {len(dataset.train):,} training texts, vocabulary {len(dataset.vocabulary):,}, "
        f"median {int(dataset.train.lengths.median())} tokens; read and encoded in {loading:.1f} s"
    )
    print(f"model: bag_of_words {model or '(defaults)'}, batch {args.batch_size}\n")
    result = measure(dataset, args.methods, model, args.rounds, args.steps, args.batch_size)
    print(markdown(result, args.methods[0]))
    if args.json:
        report = {"machine": machine, "model": model, "batch_size": args.batch_size, "methods": result}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
