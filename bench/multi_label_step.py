"""Seconds per training step on tag sets: 233 sigmoid outputs against the single-label step of the
same network, and each tag-set method against binary cross-entropy (onehot).

    LABELEMB_DATA=DATA_DIR python bench/multi_label_step.py
    LABELEMB_DATA=DATA_DIR python bench/multi_label_step.py --threads 1 --rounds 15 --steps 30
    LABELEMB_DATA=DATA_DIR python bench/multi_label_step.py --methods onehot label_embedding \
        label_embedding:fast_path=false

The data is debian-debtags (``$LABELEMB_DATA/debian-debtags``: 23,469 package descriptions, 233
tags) read through the files loader as a run reads it (words, a 50,000-entry vocabulary from
train), and the bag-of-words backbone of ``configs/debian-debtags.yaml``. The single-label twin is
the same texts, each labelled with its first tag in tag order (233 classes): the same backbone and
batches, a softmax over 233 classes in place of 233 sigmoids. A step is the trainer's own
(:class:`labelemb.training.single.Single`); rounds time the same consecutive batches for every run
in turn, as ``bench/bag_of_words.py`` does, and the figure is the ratio of the median step times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from labelemb.assembly.plan import data_of
from labelemb.data.text.classes import TextClassDataset, TextClassSplit
from labelemb.tasks import build_task
from labelemb.training import build_config, build_run
from labelemb.training.recipe import lay_out
from labelemb.training.single import Single

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bag_of_words import time_steps  # noqa: E402 (the same timing as the single-label bench)

MODEL = {"name": "bag_of_words", "embedding_dim": 64, "bigram_buckets": 65536}
FILES = {
    "format": "csv",
    "train": "debian-debtags/train.csv.gz",
    "dev": "debian-debtags/validation.csv.gz",
    "test": "debian-debtags/test.csv.gz",
    "tags_column": "tags",
}


def debtags(folder: str) -> TextClassDataset:
    """debian-debtags as a multi-label run reads it."""
    config = build_config(
        {
            "data": {"name": "files", "dir": folder, "files": FILES},
            "model": MODEL,
            "train": {"progress": False},
        }
    )
    return data_of(config).load()


def single_label_twin(tagged: TextClassDataset) -> TextClassDataset:
    """The same texts, each labelled with its first tag: a single-label set of as many classes."""

    def first_tag(split: TextClassSplit | None) -> TextClassSplit | None:
        if split is None:
            return None
        return TextClassSplit(split.inputs, split.labels.int().argmax(-1), split.lengths)

    return TextClassDataset(
        "debian-debtags-first-tag",
        first_tag(tagged.train),
        first_tag(tagged.dev),
        first_tag(tagged.test),
        list(tagged.class_names),
        vocabulary=tagged.vocabulary,
        cut_texts=dict(tagged.cut_texts),
        max_text_tokens=tagged.max_text_tokens,
    )


def method_section(method: str) -> dict:
    """``name`` or ``name:key=value,...`` (e.g. ``label_embedding:fast_path=false``) as a config's
    method section, each value read as YAML."""
    name, _, options = method.partition(":")
    pairs = (option.split("=", 1) for option in options.split(",") if option)
    return {"name": name, **{key: yaml.safe_load(value) for key, value in pairs}}


def build_step(dataset: TextClassDataset, method: str, batch_size: int) -> Single:
    """A fresh run of ``method`` (:func:`method_section`) on ``dataset``, as the trainer lays it
    out (seed 0)."""
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-multi-label-")
    config = build_config(
        {
            "output_dir": output_dir,
            "data": {"name": "files", "files": FILES if dataset.multi_label else {"train": "t", "test": "t"}},
            "model": MODEL,
            "method": method_section(method),
            "train": {"batch_size": batch_size, "device": "cpu"},
        }
    )
    device = torch.device("cpu")
    task = build_task(config, dataset)
    run = lay_out([build_run(config, dataset, device, task)], task, device)
    os.rmdir(output_dir)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--methods", nargs="+", default=["onehot", "label_smoothing", "focal", "asl", "label_embedding"]
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30, help="steps per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if "LABELEMB_DATA" not in os.environ:
        parser.error("set LABELEMB_DATA to the folder that holds debian-debtags/")
    torch.set_num_threads(args.threads)
    tagged = debtags(os.environ["LABELEMB_DATA"])
    single = single_label_twin(tagged)
    runs = {
        "single-label onehot (softmax, 233 classes)": (build_step(single, "onehot", args.batch_size), single)
    }
    for method in args.methods:
        runs[f"{method} (233 sigmoids)"] = (build_step(tagged, method, args.batch_size), tagged)
    order = next(iter(runs.values()))[0].task.epoch_order(tagged.train, 0, 0, args.batch_size)
    for run, dataset in runs.values():  # warm-up: allocator, thread pools
        time_steps(run, dataset, order, 0, max(args.steps // 5, 1), args.batch_size)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_number in range(args.rounds):
        for name, (run, dataset) in runs.items():
            times[name].append(
                time_steps(run, dataset, order, round_number * args.steps, args.steps, args.batch_size)
            )
    medians = {name: statistics.median(values) for name, values in times.items()}
    single_name, bce_name = next(iter(runs)), "onehot (233 sigmoids)"
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, cpu; batch {args.batch_size}, "
        f"{args.rounds} rounds of {args.steps} steps\n"
    )
    print("| step | ms / step | ratio to single-label | ratio to BCE |")
    print("| --- | ---: | ---: | ---: |")
    for name, median in medians.items():
        to_bce = f"{median / medians[bce_name]:.3f}" if bce_name in medians else "-"
        print(f"| {name} | {median * 1e3:.2f} | {median / medians[single_name]:.3f} | {to_bce} |")
    print(f"\n{time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
