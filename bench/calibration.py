"""What temperature scaling and the added calibration figures cost a check: the MNIST MLP.

    python bench/calibration.py                          # 784-500-500 on MNIST, 7 rounds
    python bench/calibration.py --rounds 11 --steps 300 --out calibration.json

A check of a classification run evaluates the dev split (5,000 images) and the test split
(10,000). Since the calibration work, it also keeps the dev logits, fits one temperature on them
(:func:`labelemb.metrics.fit_temperature`) and sums, for the test logits raw and scaled,
ECE, MCE, AdaECE, classwise ECE, NLL and Brier (:class:`~labelemb.tasks.calibration.ScaledCalibration`).
Three ways are timed in turn each round, on the same network (trained ``--steps`` steps first, so
that its logits are a trained model's):

- ``errors only``: the dev and test error passes, nothing else;
- ``before``: the check as it was before temperature scaling: the errors, and the test split's
  ECE and NLL from equal-width bins (written out below as the old code computed them);
- ``now``: :meth:`labelemb.tasks.Classification.evaluate` at a check that can become the run's
  selected one (the first, and each that beats every earlier dev error): everything it records;
- ``now, not selectable``: the same at a check that cannot (its dev error beats no earlier one):
  the dev figures and the raw top-probability test figures, as the trainer evaluates most checks.

The figures are the medians over the rounds of each round's ``now`` / ``before`` and
``now, not selectable`` / ``before`` (goal <= 1.05; each round starts at another way), with the
temperature fit's own median time. Quote them from an idle
machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any

import torch

from labelemb.assembly.build import load_run_data
from labelemb.assembly.plan import plan_run
from labelemb.data.base import as_float_images
from labelemb.metrics import fit_temperature
from labelemb.tasks import Classification, build_task
from labelemb.training import build_config, build_run
from labelemb.training.recipe import lay_out, schedule


def old_calibration(logits: torch.Tensor, labels: torch.Tensor, sums: dict[str, Any], bins: int = 15) -> None:
    """What a check summed per test batch before: equal-width bins of the top probability and the NLL."""
    logits, labels = logits.detach().cpu().double(), labels.cpu().long()
    confidence = torch.softmax(logits, -1).amax(-1)
    index = (torch.ceil(confidence * bins).long() - 1).clamp_(0, bins - 1)
    sums["counts"] += torch.bincount(index, minlength=bins)
    sums["correct"].index_add_(0, index, (logits.argmax(-1) == labels).double())
    sums["confidence"].index_add_(0, index, confidence)
    sums["nll"] -= torch.log_softmax(logits, -1).gather(-1, labels[:, None]).sum()


def check_before(task: Classification, predict: Any, dev: Any, test: Any) -> None:
    task.error_rate(predict, dev)
    sums = {
        "counts": torch.zeros(15, dtype=torch.int64),
        "correct": torch.zeros(15, dtype=torch.float64),
        "confidence": torch.zeros(15, dtype=torch.float64),
        "nll": torch.zeros((), dtype=torch.float64),
    }
    with torch.inference_mode():
        for start in range(0, len(test), task.eval_batch_size):
            logits = predict(as_float_images(test.inputs[start : start + task.eval_batch_size]))
            old_calibration(logits, test.labels[start : start + task.eval_batch_size], sums)
    float((sums["correct"] - sums["confidence"]).abs().sum())


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of the rounds' ratios: each round's two timings were taken one after the other,
    so a slow stretch of the machine slows both."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200, help="training steps before timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", default=os.environ.get("LABELEMB_DATA"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        config = build_config(
            {
                "experiment": "bench-calibration",
                "output_dir": folder,
                "data": {"name": "mnist", "dir": args.data_dir},
                "model": {"name": "mlp", "hidden": [500, 500]},
                "method": {"name": "onehot"},
                "train": {"batch_size": 100, "lr": 1e-3, "progress": False},
            }
        )
        dataset = load_run_data(config)
        device = torch.device("cpu")
        task = build_task(config, dataset)
        plan = schedule(plan_run(config).timing, dataset, device)
        layout = lay_out([build_run(config, dataset, device, task)], task, device)
        order = layout.epoch_orders(0, plan.train, plan.batch_size)
        for step in range(args.steps):
            layout.step(plan.train, order[:, step * 100 : (step + 1) * 100])
        layout.sync()
        predict = layout.predictor(0)
        with predict.evaluating():
            ways = {
                "errors only": lambda: (
                    task.error_rate(predict, plan.dev),
                    task.error_rate(predict, plan.test),
                ),
                "before": lambda: check_before(task, predict, plan.dev, plan.test),
                "now": lambda: task.evaluate(predict, plan.dev, plan.test),
                "now, not selectable": lambda: task.evaluate(predict, plan.dev, plan.test, lambda r: False),
            }
            dev_logits: list[torch.Tensor] = []
            task.error_rate(predict, plan.dev, keep=dev_logits)
            logits = torch.cat(dev_logits)
            ways["temperature fit"] = lambda: fit_temperature(logits, plan.dev.labels)
            seconds: dict[str, list[float]] = {name: [] for name in ways}
            for way in ways.values():  # warm-up
                way()
            names = list(ways)
            for round_ in range(args.rounds):
                # Each round starts at another way, so that none always follows the same one.
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    way = ways[name]
                    started = time.perf_counter()
                    way()
                    seconds[name].append(time.perf_counter() - started)
        record = task.evaluate(predict, plan.dev, plan.test)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    result = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "rounds": args.rounds,
        "median_seconds": medians,
        "now_over_before": paired_ratio(seconds["now"], seconds["before"]),
        "not_selectable_over_before": paired_ratio(seconds["now, not selectable"], seconds["before"]),
        "temperature": record["temperature"],
        "test_error": record["test_error"],
    }
    for name, value in medians.items():
        print(f"{name:>16}: {1000 * value:8.1f} ms")
    print(
        f"check now / before: {result['now_over_before']:.3f} where it can be selected, "
        f"{result['not_selectable_over_before']:.3f} where not (goal <= 1.05); "
        f"T = {record['temperature']:.3f}"
    )
    print(f"load average {result['load_average']}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
