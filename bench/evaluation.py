"""What judging a finished run beyond its error adds to the run: the evaluation (selective
classification, conformal sets, the config's OOD sets) against the run's own wall time.

    python bench/evaluation.py                                     # Fashion-MNIST MLP, onehot, 3 rounds
    python bench/evaluation.py --method label_embedding --epochs 15 --rounds 5 --out evaluation.json

One run of ``configs/fashion-mnist-mlp.yaml`` (its OOD set: MNIST, from ``$LABELEMB_DATA``) is
trained into a temporary folder (``--epochs``, the config's 15 by default), then
:func:`labelemb.evaluation.run.evaluate_run` is timed ``--rounds`` times with ``refresh``
(reading the run, its data and the OOD set, the logits of dev, test and MNIST, every figure,
writing the record). The ratio is the median evaluation time over the run's wall time; the goal
is at most 0.05. Quote figures from an idle machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from labelemb.config import read_config_file
from labelemb.evaluation.run import evaluate_run
from labelemb.training import build_config, train

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion-mnist-mlp.yaml")
    parser.add_argument("--method", default="onehot")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    raw = read_config_file(ROOT / args.config)
    overrides = [f"method.name={args.method}", "train.progress=false", "train.device=cpu"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    with tempfile.TemporaryDirectory() as folder:
        config = build_config({**raw, "output_dir": folder}, overrides)
        summary = train(config)
        seconds = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            record = evaluate_run(config.run_dir(), refresh=True)
            seconds.append(time.perf_counter() - started)
    evaluation = statistics.median(seconds)
    figures = {
        "config": args.config,
        "method": args.method,
        "epochs": config.train.epochs,
        "run_wall_seconds": round(summary["wall_seconds"], 2),
        "evaluation_seconds": [round(s, 3) for s in seconds],
        "ratio": round(evaluation / summary["wall_seconds"], 4),
        "ood_sets": sorted(record["ood"]),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
