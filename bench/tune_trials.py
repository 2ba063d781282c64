"""The cost of a tuning round: K trials side by side in one process against one process per trial.

    python bench/tune_trials.py                                   # 4 trials, digits MLP 64-500-500
    python bench/tune_trials.py --data fashion-mnist --trials 8 --epochs 1 --json tune.json
    python bench/tune_trials.py --data fashion-mnist --lr          # a searched learning rate

A round of ``labelemb tune`` is K trials of one method: the same config and seed, the method's own
options differing (here label_smoothing's epsilon, or ``--method label_embedding``'s tau and
alpha), or with ``--lr`` the learning rate (``train.lr`` log-spaced from 1e-4 to 1e-2, the method
at its defaults). Two ways to train them, each from a fresh output folder and each a fresh Python process
per unit of work, as the tune command's workers are:

- ``process per trial``: K processes one after another, each ``labelemb train`` of one trial
  (import, data, training);
- ``side by side``: one process trains the K settings stacked
  (:class:`labelemb.training.stacked.StackedSettings`: one grouped backbone pass for all, each setting's
  method on its slice), what ``labelemb tune --batched-trials K`` runs.

The figure is the wall time of the round; the ratio is process-per-trial over side-by-side (above 1:
side by side is faster). Rounds alternate the ways after one warm-up of each (files cached); the
figures are medians over ``--rounds``. One CPU thread per process (``--threads``), so that the
ways are compared on the same compute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = {
    "label_smoothing": lambda i, k: {"epsilon": round(0.3 * i / max(1, k - 1), 4)},
    "label_embedding": lambda i, k: {"tau": round(1.0 + 7.0 * i / max(1, k - 1), 4), "alpha": 0.9},
}


def configs(args: argparse.Namespace, output_dir: str) -> list[dict]:
    raw = {
        "output_dir": output_dir,
        "seed": 0,
        "data": {"name": args.data},
        "model": {"name": "mlp", "hidden": [500, 500]},
        "train": {"epochs": args.epochs, "progress": False, "threads": args.threads},
    }
    return [
        {
            **raw,
            "experiment": f"trial{i}",
            "method": {"name": args.method, **({} if args.lr else SETTINGS[args.method](i, args.trials))},
            "train": {**raw["train"], **({"lr": learning_rate(i, args.trials)} if args.lr else {})},
        }
        for i in range(args.trials)
    ]


def learning_rate(i: int, k: int) -> float:
    """Trial ``i`` of ``k``'s rate: log-spaced over 1e-4 .. 1e-2, the range of ``train.lr=1e-4:1e-2:log``."""
    return round(1e-4 * 100 ** (i / max(1, k - 1)), 8)


TRAIN_ONE = """
import json, sys
from labelemb.training import build_config, train
train(build_config(json.loads(sys.argv[1]), []))
"""
TRAIN_TOGETHER = """
import json, sys
from labelemb.training import build_config, train
configs = [build_config(raw, []) for raw in json.loads(sys.argv[1])]
summaries = train(configs, progress=False)
assert all(s.get("batched_seeds") == len(configs) for s in summaries), "the trials did not train side by side"
"""


def timed(way: str, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as output_dir:
        raws = configs(args, output_dir)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        began = time.perf_counter()
        if way == "process per trial":
            for raw in raws:
                subprocess.run([sys.executable, "-c", TRAIN_ONE, json.dumps(raw)], check=True, env=env)
        else:
            subprocess.run([sys.executable, "-c", TRAIN_TOGETHER, json.dumps(raws)], check=True, env=env)
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="data set (digits, fashion-mnist, mnist)")
    parser.add_argument("--method", default="label_smoothing", choices=sorted(SETTINGS))
    parser.add_argument("--trials", type=int, default=4, help="trials in the round (K)")
    parser.add_argument(
        "--lr", action="store_true", help="the trials differ in train.lr, not the method's options"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    ways = ["process per trial", "side by side"]
    for way in ways:  # warm-up: files cached, nothing measured
        timed(way, args)
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(args.rounds):
        for way in ways:
            seconds[way].append(timed(way, args))
    median = {way: statistics.median(values) for way, values in seconds.items()}
    ratio = median["process per trial"] / median["side by side"]
    setting = f"{args.data}, MLP 500-500, {args.epochs} epochs, {args.threads} thread(s)"
    searched = "train.lr" if args.lr else "its own options"
    print(f"{args.trials} trials of {args.method} ({searched}), {setting}:")
    for way in ways:
        print(f"  {way:18s} {median[way]:8.2f} s  (rounds: {', '.join(f'{v:.2f}' for v in seconds[way])})")
    print(f"  ratio (process per trial / side by side): {ratio:.2f}")
    if args.json:
        figures = {
            "args": vars(args),
            "seconds": seconds,
            "median": median,
            "ratio": ratio,
            "machine": {"processor": platform.machine(), "cpus": os.cpu_count()},
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
