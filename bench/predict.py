"""What predicting with a trained run costs: labelemb.load's predictor against the trainer's own
evaluation pass on the same data, ONNX Runtime against eager PyTorch, a bundle's size against model.pt.

    python bench/predict.py                                    # MNIST MLP and debian-sections, 5 rounds
    python bench/predict.py --data mnist --rounds 3 --max-train 5000 --out predict.json

For each data set a short run is trained first (``--epochs``, the first ``--max-train`` training
rows; what is timed does not depend on how well it learned) from the repository's config
(``configs/mnist-mlp.yaml``: the 784-500-500 MLP on the 10,000 MNIST test images;
``configs/debian-sections.yaml``: the bag of words on the 6,180 test texts). Timed in turn each
round, on the test split:

- ``evaluation``: the trainer's check of the test split (:meth:`Task.evaluate` with no dev split:
  the error, macro-F1 for texts, the calibration sums), on the split as the run holds it;
- ``predict (held)``: :meth:`Predictor.logits` on the same tensors (images as held, word ids);
- ``predict (raw)``: from what a user has: the images as uint8 arrays (H, W), decoded and resized
  by the image rules, or the texts, tokenised and encoded with the run's vocabulary;
- ``eager`` and ``onnxruntime``: the exported network alone on the same batches of model inputs.

Rows per second is the test split's size over the median time; the goal is predict (held) at
least 0.9 of evaluation. Quote figures from an idle machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import labelemb
from labelemb.assembly.build import load_run_data
from labelemb.assembly.parts import resolve_device
from labelemb.config import read_config_file
from labelemb.predict.export import export, onnxruntime_session
from labelemb.tasks import build_task
from labelemb.training import build_config, build_run, train
from labelemb.training.single import Single

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"mnist": "configs/mnist-mlp.yaml", "debian-sections": "configs/debian-sections.yaml"}


def trained_run(name: str, folder: Path, epochs: int, max_train: int) -> Any:
    """A short run of data set ``name``'s config, trained into ``folder``; its config."""
    raw = read_config_file(ROOT / CONFIGS[name])
    overrides = [
        f"train.epochs={epochs}",
        f"data.max_train_pairs={max_train}",
        "train.progress=false",
        "train.device=cpu",
        "train.eval_every=null",
        f"output_dir={folder}",
    ]
    config = build_config(raw, overrides)
    train(config)
    return config


def seconds_of(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def raw_inputs(name: str, test: Any, config: Any) -> Any:
    """The test split as a user has it: uint8 image arrays, or the texts of the test file."""
    if name == "mnist":
        pixels = (test.inputs[:, 0] * 255).round().to(torch.uint8).numpy()
        return list(pixels)
    import pandas as pd

    data_dir = os.environ.get("LABELEMB_DATA", "")
    path = Path(data_dir) / config.data.model_extra["files"].test
    return list(pd.read_csv(path, keep_default_na=False, dtype=str)["text"])


def model_batches(predictor: Any, test: Any) -> list[torch.Tensor]:
    """The network's input batches of the test split, as prediction makes them."""
    parts = list(predictor.parts(test, None))
    batches = []
    for part in parts:
        if hasattr(part, "lengths"):
            order = torch.argsort(part.lengths, stable=True)
            for chunk in order.split(predictor.batch_size):
                width = max(int(part.lengths[chunk[-1]]), 1)
                batches.append(part.inputs[:, :width][chunk])
        else:
            batches += [rows.float() for rows in part.split(predictor.batch_size)]
    return batches


def measure(name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The timings and sizes of one data set."""
    config = trained_run(name, folder, args.epochs, args.max_train)
    run_dir = config.run_dir()
    dataset = load_run_data(config)
    test = dataset.test
    device = resolve_device("cpu")
    task = build_task(config, dataset)
    seed_run = build_run(config, dataset, device, task)
    evaluator = Single(seed_run, task, device).predictor(0)
    predictor = labelemb.load(run_dir)
    raw = raw_inputs(name, test, config)
    export(predictor, "onnx", folder / "onnx")
    export(predictor, "bundle", folder / "bundle")
    session = onnxruntime_session(folder / "onnx" / "model.onnx")
    batches = model_batches(predictor, test)
    model = predictor.model

    def eager() -> None:
        with torch.inference_mode():
            for batch in batches:
                model(batch)

    def ort() -> None:
        for batch in batches:
            session.run(["scores"], {"inputs": batch.numpy()})

    timed = {
        "evaluation": lambda: task.evaluate(evaluator, None, test),
        "predict (held)": lambda: predictor.logits(test),
        "predict (raw)": lambda: predictor.logits(raw),
        "eager": eager,
        "onnxruntime": ort,
    }
    seconds = {key: [] for key in timed}
    for _ in range(args.rounds):
        for key, run in timed.items():
            seconds[key].append(seconds_of(run))
    rows = len(test)
    result = {
        key: {"seconds": statistics.median(v), "rows_per_s": rows / statistics.median(v)}
        for key, v in seconds.items()
    }
    bundle_bytes = sum(p.stat().st_size for p in (folder / "bundle").iterdir())
    return {
        "rows": rows,
        "timings": result,
        "predict_over_evaluation": result["predict (held)"]["rows_per_s"]
        / result["evaluation"]["rows_per_s"],
        "onnx_over_eager": result["onnxruntime"]["rows_per_s"] / result["eager"]["rows_per_s"],
        "bundle_bytes": bundle_bytes,
        "model_pt_bytes": (run_dir / "model.pt").stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=[*CONFIGS, "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(CONFIGS) if args.data == "both" else [args.data]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            figures = measure(name, Path(scratch), args)
        results[name] = figures
        print(f"\n{name}: {figures['rows']} test rows, median of {args.rounds} rounds")
        for key, value in figures["timings"].items():
            print(f"  {key:16s} {value['seconds'] * 1000:9.1f} ms  {value['rows_per_s']:12,.0f} rows/s")
        print(f"  predict (held) / evaluation: {figures['predict_over_evaluation']:.2f} (goal >= 0.9)")
        print(f"  onnxruntime / eager: {figures['onnx_over_eager']:.2f}")
        sizes = figures["bundle_bytes"] / 1e6, figures["model_pt_bytes"] / 1e6
        print(f"  bundle {sizes[0]:.2f} MB, model.pt {sizes[1]:.2f} MB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
