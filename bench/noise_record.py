"""What recording the noise costs a run: the same run on right labels and on labels made "noisy" at
rate 0 (every label kept, so both train alike, step for step), alternating, whole processes.

    LABELEMB_DATA=../shared/data python bench/noise_record.py
    LABELEMB_DATA=../shared/data python bench/noise_record.py --config configs/fashion-mnist-mlp.yaml \
        --epochs 3 --rounds 5

A noisy run does three things a clean one does not: each training step scatters its predicted
classes into a table on the device (:mod:`labelemb.training.memorisation`), each check reads the
table's two figures, and the evaluation scores the whole training split at the selected and the
final weights (:func:`labelemb.evaluation.run`'s noise record). The figures are the ratios,
noisy over clean, of the medians over rounds of the training seconds the run records
(``train_seconds`` at its last check: steps and checks) and of the whole process's wall seconds
(data, training, evaluation). With ``noise.rate=0`` no label changes, so the two runs train the
same numbers and differ only by what the recording costs.
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
from pathlib import Path


def one_run(config: str, epochs: int, noisy: bool, threads: int) -> tuple[float, float]:
    """(training seconds the run records, wall seconds of the process) of one fresh run."""
    with tempfile.TemporaryDirectory() as folder:
        overrides = [
            f"train.epochs={epochs}",
            "ood=[]",
            "shift=[]",
            f"output_dir={folder}",
            "experiment=bench",
        ]
        if noisy:
            overrides += ["noise.kind=symmetric", "noise.rate=0"]
        command = [sys.executable, "-m", "labelemb", "train", "--config", config, "--method", "onehot"]
        environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(
            [*command, "--no-progress", *overrides], check=True, capture_output=True, env=environment
        )
        wall = time.perf_counter() - start
        last_check = next(Path(folder).rglob("metrics.jsonl")).read_text().splitlines()[-1]
        return float(json.loads(last_check)["train_seconds"]), wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/mnist-mlp.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    times: dict[str, list[tuple[float, float]]] = {"clean": [], "noisy": []}
    one_run(args.config, 1, True, args.threads)  # warm-up: the data decoded and cached
    for _ in range(args.rounds):
        for kind in ("clean", "noisy"):
            times[kind].append(one_run(args.config, args.epochs, kind == "noisy", args.threads))
    medians = {kind: [statistics.median(t[i] for t in runs) for i in (0, 1)] for kind, runs in times.items()}
    figures = {
        "config": args.config,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "clean_train_seconds": medians["clean"][0],
        "noisy_train_seconds": medians["noisy"][0],
        "clean_wall_seconds": medians["clean"][1],
        "noisy_wall_seconds": medians["noisy"][1],
        "train_ratio": medians["noisy"][0] / medians["clean"][0],
        "wall_ratio": medians["noisy"][1] / medians["clean"][1],
    }
    for key, value in figures.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
