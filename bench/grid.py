"""The overhead per run of the ``ray`` executor against ``local``, on a grid of tiny runs.

    python bench/grid.py                       # 8 runs of the digits MLP, 2 epochs each
    python bench/grid.py --runs 16 --epochs 1 --json grid.json

Every way trains the same grid (``--runs`` seeds of ``--method`` on the embedded digits, an MLP
64-32, ``--epochs`` epochs, one CPU thread per run) into a fresh output folder, through
:func:`labelemb.sweep.grid.run_grid`, with as many runs at once as this machine has cores
(``--workers``); the figure is the wall time of the whole grid, divided by the runs:

- ``local``: :class:`~labelemb.sweep.executors.LocalExecutor` with ``--workers`` spawned processes;
- ``ray (cold)``: :class:`~labelemb.sweep.ray_executor.RayExecutor` without an address, as
  ``compare --executor ray`` runs it: an embedded Ray started for the grid and stopped after it;
- ``ray (warm)``: the same on a Ray this process started before the clock (what a grid on a
  running cluster pays: the storage check, the tasks, their worker processes).

Overhead per run is (the way's wall time - local's) / runs; the ratio is the way's wall time over
local's. Rounds alternate the ways (after one warm-up of each, so that files are cached); the
figures are the medians over ``--rounds``. A grid of tiny runs is the worst case: the overhead is a
fixed cost per run and per grid, against training that takes well under a second here.

The warm-up round is the grid a command runs first, and is printed too (``first grid``): the
local executor's workers fork from a server process that imports labelemb once and stays for
the life of the process, so a second grid (a tuning round, a benchmark round) starts warm.
``--ways local`` times the local executor alone (no Ray needed).

Ray puts its processes on the machine's network address; on a machine that may use loopback only,
run the benchmark in a private network namespace (as root):
``unshare -n sh -c 'ip link set lo up && python bench/grid.py'``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from typing import Any

#: The executors timed: this machine's processes, an embedded Ray started with the grid, a running Ray.
WAYS = ("local", "ray (cold)", "ray (warm)")


def grid(output_dir: str, runs: int, epochs: int, method: str) -> list[Any]:
    from labelemb.training import build_config

    raw = {
        "experiment": "bench",
        "output_dir": output_dir,
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "method": {"name": method},
        "train": {"epochs": epochs, "progress": False, "threads": 1},
    }
    return [build_config({**raw, "seed": seed}, []) for seed in range(runs)]


def timed(way: str, args: argparse.Namespace) -> float:
    """Seconds of wall time to train the grid afresh the way ``way`` does."""
    from labelemb.sweep.executors import LocalExecutor
    from labelemb.sweep.grid import run_grid
    from labelemb.sweep.ray_executor import RayExecutor

    executor: Any
    if way == "local":
        executor = LocalExecutor(jobs=args.workers)
    else:
        executor = RayExecutor(address=None)
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as folder:
        configs = grid(folder, args.runs, args.epochs, args.method)
        began = time.perf_counter()
        summaries = run_grid(configs, progress=False, executor=executor)
        seconds = time.perf_counter() - began
    if len(summaries) != args.runs:
        raise RuntimeError(f"{way}: {len(summaries)} of {args.runs} runs came back")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--method", default="label_embedding")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="runs at once (local)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="the ways to time")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    times: dict[str, list[float]] = {way: [] for way in args.ways}
    first: dict[str, float] = {}
    for round_ in range(args.rounds + 1):  # round 0: the warm-up, the command's first grid
        for way in args.ways:
            seconds = timed_on_ray(way, args) if way == "ray (warm)" else timed(way, args)
            if round_:
                times[way].append(seconds)
            else:
                first[way] = seconds
    report_rows(args, times, first)


def timed_on_ray(way: str, args: argparse.Namespace) -> float:
    """:func:`timed` on a Ray this process starts before the clock and stops after."""
    import ray

    ray.init(address="local", num_cpus=args.workers, log_to_driver=False, logging_level=logging.ERROR)
    try:
        return timed(way, args)
    finally:
        ray.shutdown()


def report_rows(args: argparse.Namespace, times: dict[str, list[float]], first: dict[str, float]) -> None:
    """Print (and write to ``--json``) each way's median grid, against the first way's."""
    import torch

    baseline = statistics.median(times[args.ways[0]])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread per run"
    print(f"machine: {machine}")
    print(f"{args.runs} runs of {args.method} (digits MLP, {args.epochs} epochs), {args.workers} at once")
    columns = f"{'first grid s':>12s} {'grid s':>8s} {'s / run':>8s} {'overhead s / run':>17s} {'ratio':>6s}"
    print(f"{'':12s} {columns}")
    rows = []
    for way in args.ways:
        wall = statistics.median(times[way])
        row = {
            "way": way,
            "first_grid_seconds": first[way],
            "seconds": wall,
            "seconds_per_run": wall / args.runs,
            "overhead_per_run": (wall - baseline) / args.runs,
            "ratio": wall / baseline,
        }
        rows.append(row)
        print(
            f"{way:12s} {first[way]:12.2f} {wall:8.2f} {row['seconds_per_run']:8.2f} "
            f"{row['overhead_per_run']:17.2f} {row['ratio']:6.2f}"
        )
    if args.json:
        report = {"machine": machine, "runs": args.runs, "epochs": args.epochs, "method": args.method}
        report.update(workers=args.workers, rounds=args.rounds, times=times, first=first, rows=rows)
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
