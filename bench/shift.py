"""What a shift evaluation costs: making each corrupted test set, against scoring a network on it,
and against reading it back from the cache.

    python bench/shift.py                                  # Fashion-MNIST test split, the MNIST-C conditions
    python bench/shift.py --data mnist --corruptions severities --rounds 3 --out shift.json

For each condition (:mod:`labelemb.data.corruptions.suites`), on the 10,000 test images of
``--data`` (from ``$LABELEMB_DATA``): the seconds to make the corrupted set
(:func:`labelemb.data.corruptions.corrupt`), to read it back from the cache
(:func:`labelemb.evaluation.corrupted.corrupted_images`, a second call), and to score it with the
backbones of the Fashion-MNIST MLP (784-500-500) and of the paper's MNIST CNN (untrained: the
time does not depend on the weights; the head adds a 500 x 10 or 1024 x 10 product). Each figure is
the median of ``--rounds``; the ratios are making / scoring and reading / scoring, in the same
process. Quote figures from an idle machine; the load average
is printed.
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

from labelemb.data import DataRequest
from labelemb.data import load as load_data
from labelemb.data.corruptions import corrupt
from labelemb.data.corruptions.suites import conditions
from labelemb.evaluation.corrupted import corrupted_images
from labelemb.models import build_model


def median_seconds(work, rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


@torch.inference_mode()
def score(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> None:
    for rows in images.split(batch_size):
        network(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--corruptions", default="mnist-c", help="as labelemb shift --corruptions takes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    test = load_data(args.data, DataRequest(dir=os.environ.get("LABELEMB_DATA"), download=False)).test
    images = test.inputs.float() / (255.0 if test.inputs.dtype == torch.uint8 else 1.0)
    shape = tuple(images.shape[1:])
    networks = {name: build_model(name, shape).eval() for name in ("mlp", "cnn")}
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for condition in conditions(args.corruptions.split(","), "images"):
            making = median_seconds(
                lambda c=condition: corrupt(images, c.name, c.severity, seed=0), args.rounds
            )
            corrupted = corrupted_images(images, condition, 0, cache)  # made once into the cache
            reading = median_seconds(lambda c=condition: corrupted_images(images, c, 0, cache), args.rounds)
            row = {"condition": condition.key, "make_s": round(making, 3), "read_s": round(reading, 3)}
            for name, network in networks.items():
                scoring = median_seconds(lambda n=network, c=corrupted: score(n, c), args.rounds)
                row[f"score_{name}_s"] = round(scoring, 3)
                row[f"make_over_{name}"] = round(making / scoring, 2)
                row[f"read_over_{name}"] = round(reading / scoring, 2)
            rows.append(row)
            print(json.dumps(row))
    figures = {
        "data": args.data,
        "images": len(images),
        "conditions": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
