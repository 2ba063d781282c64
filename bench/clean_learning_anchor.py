"""cleanlab's CleanLearning as the anchor of "clean, then train": a scikit-learn logistic regression
on the pixels, trained on every (noisy) training row, and CleanLearning around the same model (its
own 5-fold cross-validated probabilities, ``find_label_issues``'s default filter, the flagged rows
removed, the model fitted again), each judged by its error on the clean test split.

    python bench/clean_learning_anchor.py --config configs/fashion-mnist-mlp.yaml --json OUT.json \\
        noise.kind=symmetric noise.rate=0.4

The data is what a run of ``--config`` (and the ``key=value`` overrides) trains on, read by
labelemb: the same training rows and the same noisy labels (the ``noise:`` section), the test split
clean. Each input is its flattened pixels. The JSON holds, for each ``--seeds`` seed (CleanLearning's
folds), the test error of the plain model and of CleanLearning's, the rows CleanLearning flagged
(with their precision and recall where the truth is known) and the seconds of each fit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def arrays(config_path: str | None, overrides: list[str]) -> dict[str, np.ndarray]:
    """The training inputs and labels (noisy), the truth where known, and the test split."""
    from labelemb.assembly import data_of
    from labelemb.config import load_config
    from labelemb.data.base import as_float_images

    dataset = data_of(load_config(config_path, overrides)).load()

    def flat(split) -> np.ndarray:
        return as_float_images(split.inputs).reshape(len(split), -1).numpy()

    truth = None if dataset.noise is None else dataset.noise.clean["train"].numpy()
    return {
        "x": flat(dataset.train),
        "y": dataset.train.labels.numpy(),
        "truth": truth,
        "x_test": flat(dataset.test),
        "y_test": dataset.test.labels.numpy(),
    }


def model(max_iter: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=max_iter)


def error(fitted, data: dict[str, np.ndarray]) -> float:
    return round(100.0 * float(np.mean(fitted.predict(data["x_test"]) != data["y_test"])), 2)


def anchor(data: dict[str, np.ndarray], seed: int, max_iter: int) -> dict[str, float | int | None]:
    """CleanLearning around the logistic regression, with folds drawn by ``seed``."""
    from cleanlab.classification import CleanLearning

    started = time.perf_counter()
    cleaned = CleanLearning(model(max_iter), seed=seed, cv_n_folds=5).fit(data["x"], data["y"])
    flagged = cleaned.get_label_issues()["is_label_issue"].to_numpy()
    row: dict[str, float | int | None] = {
        "seed": seed,
        "clean_learning_test_error": error(cleaned, data),
        "flagged": int(flagged.sum()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if data["truth"] is not None:
        wrong = data["truth"] != data["y"]
        hits = int((flagged & wrong).sum())
        row["precision"] = round(100.0 * hits / max(int(flagged.sum()), 1), 2)
        row["recall"] = round(100.0 * hits / max(int(wrong.sum()), 1), 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="the run's YAML config (default: the digits demo)")
    parser.add_argument("--seeds", default="0", help="CleanLearning's fold seeds, e.g. 0,1,2")
    parser.add_argument("--max-iter", type=int, default=100, help="the logistic regression's iterations")
    parser.add_argument("--json", required=True, help="where the figures are written")
    parser.add_argument("overrides", nargs="*", help="config key=value overrides")
    args = parser.parse_args()
    data = arrays(args.config, args.overrides)
    started = time.perf_counter()
    plain = model(args.max_iter).fit(data["x"], data["y"])
    result = {
        "model": f"sklearn LogisticRegression(max_iter={args.max_iter}) on the pixels",
        "training_rows": int(len(data["y"])),
        "plain_test_error": error(plain, data),
        "plain_seconds": round(time.perf_counter() - started, 1),
        "clean_learning": [],
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for seed in (int(s) for s in args.seeds.split(",")):
        result["clean_learning"].append(anchor(data, seed, args.max_iter))
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
