"""Images from files: decode throughput of the image cache against a plain Pillow loop, and a
Fashion-MNIST MLP epoch trained from the cache against the named in-memory set.

    python examples/fashion_mnist_pngs.py --out /tmp/fashion-mnist-png     # once: the 70,000 PNGs
    python bench/image_files.py --pngs /tmp/fashion-mnist-png               # both parts
    python bench/image_files.py --pngs /tmp/fashion-mnist-png --what decode --images 10000 --rounds 3

**Decode** (``--what decode``): the first ``--images`` PNGs of ``train/`` (default all 55,000), by
sorted name, read three ways, each round in turn after one untimed pass that puts every file in
the page cache (so no way pays for the disk and the others not):

- ``pillow``: the plain loop, ``Image.open``, ``.convert("L")``, ``np.asarray`` into a preallocated
  uint8 array;
- ``cache, first run``: :func:`labelemb.data.image_cache.cached_images` into an empty folder:
  hashes every file, decodes, writes the cache and fsyncs it;
- ``cache, second run``: the same call finding that cache: hashes every file and maps the cache.

Images / s are the median over ``--rounds``; ratios are against ``pillow``'s time in the same run.

**Epoch** (``--what epoch``): the paper's MLP (784-500-500, batch 100, the trainer's Adam) with
``--method`` (default onehot); one epoch is 550 of the trainer's own steps
(:class:`labelemb.training.single.Single`) in a seeded order over the train split of (a) the named
``fashion-mnist`` set, float32 in memory, and (b) the same images through ``data.name: files``
(``format: imagefolder``, the train/dev/test folders of ``--pngs``, the named set's class order),
uint8 memory-mapped from the image cache and made float a batch at a time. The two alternate
for ``--rounds`` rounds after a warm-up; the ratio is the median epoch of (b) over (a). Loading
seconds are given once each: (b) first into an empty cache folder (Hugging Face reads the image
folder, every image is decoded), then again (both caches found: the image files are hashed and
nothing is decoded; most of that time is Hugging Face's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from labelemb.assembly.build import load_run_data
from labelemb.data import Dataset, Split, load_dataset
from labelemb.data.image_cache import cached_images
from labelemb.data.mnist import FASHION_MNIST
from labelemb.training import Classification, build_config, build_run, epoch_permutation
from labelemb.training.recipe import lay_out
from labelemb.training.single import Single

BATCH_SIZE = 100
MLP = {"name": "mlp", "hidden": [500, 500]}


# --- decode --------------------------------------------------------------------------------------


def pillow_loop(paths: list[str]) -> np.ndarray:
    """The baseline: open, convert to grayscale and copy out each file, nothing else."""
    first = np.asarray(Image.open(paths[0]).convert("L"))
    images = np.empty((len(paths), *first.shape), dtype=np.uint8)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            images[index] = np.asarray(image.convert("L"))
    return images


def cache_build(paths: list[str], cache_dir: Path) -> torch.Tensor:
    return cached_images(paths, names=paths, channels=1, size=None, cache_dir=cache_dir, progress=False)


def timed(work: Any, *args: Any) -> float:
    start = time.perf_counter()
    work(*args)
    return time.perf_counter() - start


def measure_decode(paths: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """Seconds of each way per round (median), images / s and the ratio to the Pillow loop."""
    pillow_loop(paths)  # the untimed pass: every file in the page cache
    seconds: dict[str, list[float]] = {"pillow": [], "cache, first run": [], "cache, second run": []}
    for _ in range(rounds):
        folder = Path(tempfile.mkdtemp(prefix="labelemb-bench-images-"))
        seconds["pillow"].append(timed(pillow_loop, paths))
        seconds["cache, first run"].append(timed(cache_build, paths, folder))
        seconds["cache, second run"].append(timed(cache_build, paths, folder))
        shutil.rmtree(folder)
    base = statistics.median(seconds["pillow"])
    return {
        way: {
            "seconds": statistics.median(times),
            "images_per_second": len(paths) / statistics.median(times),
            "ratio": statistics.median(times) / base,
        }
        for way, times in seconds.items()
    }


# --- epoch ---------------------------------------------------------------------------------------


def files_config(pngs: Path, cache_dir: Path, method: str, device: str, output_dir: str) -> Any:
    files = {
        "format": "imagefolder",
        "train": str(pngs / "train"),
        "dev": str(pngs / "dev"),
        "test": str(pngs / "test"),
        "class_names": list(FASHION_MNIST.class_names),
        "cache_dir": str(cache_dir),
    }
    return run_config({"name": "files", "files": files}, method, device, output_dir)


def run_config(data: dict[str, Any], method: str, device: str, output_dir: str) -> Any:
    return build_config(
        {
            "output_dir": output_dir,
            "model": MLP,
            "method": {"name": method},
            "data": data,
            "train": {"batch_size": BATCH_SIZE, "device": device, "progress": False},
        }
    )


def epoch_seconds(run: Single, split: Split, order: torch.Tensor, steps: int) -> float:
    """Seconds for ``steps`` of the trainer's steps in ``order``: one epoch when it covers the split."""
    cuda = split.inputs.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(steps):
        run.step(split, order[step * BATCH_SIZE : (step + 1) * BATCH_SIZE][None])
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def trainer(config: Any, dataset: Dataset, device: torch.device) -> Single:
    task = Classification()
    return lay_out([build_run(config, dataset, device, task)], task, device)


def measure_epoch(pngs: Path, method: str, rounds: int, device_name: str) -> dict[str, dict[str, float]]:
    """Load both data sets (timed), then alternate epochs of the two, ``rounds`` times."""
    device = torch.device(device_name)
    output_dir = tempfile.mkdtemp(prefix="labelemb-bench-epoch-")  # empty: nothing to resume
    cache_dir = Path(tempfile.mkdtemp(prefix="labelemb-bench-cache-"))
    start = time.perf_counter()
    named = load_dataset("fashion-mnist")
    load = {"named": time.perf_counter() - start}
    config = files_config(pngs, cache_dir, method, device_name, output_dir)
    start = time.perf_counter()
    load_run_data(config)
    load["files, first run"] = time.perf_counter() - start
    start = time.perf_counter()
    files = load_run_data(config)
    load["files, second run"] = time.perf_counter() - start
    assert files.train.inputs.dtype == torch.uint8, "the files path should keep the cache's uint8 images"
    assert torch.equal(files.train.labels, named.train.labels), "the PNGs are not the named set's train split"
    runs = {
        "named": (
            trainer(run_config({"name": "fashion-mnist"}, method, device_name, output_dir), named, device),
            named.train.to(device),
        ),
        "files": (trainer(config, files, device), files.train.to(device)),
    }
    order = epoch_permutation(0, 0, len(named.train)).to(device)
    steps = len(order) // BATCH_SIZE
    for run, split in runs.values():  # warm-up: allocator, kernels, the map's pages
        epoch_seconds(run, split, order, steps // 5)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (run, split) in runs.items():
            seconds[name].append(epoch_seconds(run, split, order, steps))
    shutil.rmtree(cache_dir)
    shutil.rmtree(output_dir, ignore_errors=True)
    base = statistics.median(seconds["named"])
    result = {
        name: {"seconds_per_epoch": statistics.median(times), "ratio": statistics.median(times) / base}
        for name, times in seconds.items()
    }
    result["load_seconds"] = load
    return result


# --- report --------------------------------------------------------------------------------------


def print_decode(result: dict[str, dict[str, float]], count: int) -> None:
    print(f"\nDecode, {count:,} Fashion-MNIST PNGs (28 x 28 grayscale), median of the rounds:\n")
    print("| way | seconds | images / s | time vs Pillow loop |")
    print("|---|---:|---:|---:|")
    for way, figures in result.items():
        rate = figures["images_per_second"]
        print(f"| {way} | {figures['seconds']:.2f} | {rate:,.0f} | {figures['ratio']:.3f} |")


def print_epoch(result: dict[str, Any], method: str) -> None:
    load = result["load_seconds"]
    print(f"\nMLP 784-500-500 epoch ({method}, 550 steps of 100), median of the rounds:\n")
    print("| data | load s | s / epoch | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| named fashion-mnist, float32 in memory | {load['named']:.1f} | "
        f"{result['named']['seconds_per_epoch']:.3f} | 1.000 |"
    )
    print(
        f"| files, imagefolder PNGs, uint8 cache (memory-mapped) | {load['files, first run']:.1f} first, "
        f"{load['files, second run']:.1f} second | {result['files']['seconds_per_epoch']:.3f} | "
        f"{result['files']['ratio']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pngs", type=Path, required=True, help="the folder examples/fashion_mnist_pngs.py wrote"
    )
    parser.add_argument("--what", nargs="+", choices=["decode", "epoch"], default=["decode", "epoch"])
    parser.add_argument("--images", type=int, default=0, help="decode the first this many of train/ (0: all)")
    parser.add_argument("--method", default="onehot", help="the method of the epoch's MLP (default onehot)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {args.device}, load average {load:.2f}"
    )
    print(f"machine: {machine}")
    report: dict[str, Any] = {"machine": machine}
    if "decode" in args.what:
        paths = sorted(str(path) for path in (args.pngs / "train").glob("*.png"))
        paths = paths[: args.images] if args.images else paths
        report["decode"] = measure_decode(paths, args.rounds)
        print_decode(report["decode"], len(paths))
    if "epoch" in args.what:
        report["epoch"] = measure_epoch(args.pngs, args.method, args.rounds, args.device)
        print_epoch(report["epoch"], args.method)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
