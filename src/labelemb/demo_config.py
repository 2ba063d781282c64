"""The embedded default experiment, the demo's and that of train, compare and tune without a
config: no file, no network (scikit-learn's bundled 8x8 digits). Plain data, so that the command
line's checks can read it before anything heavy is imported."""

from __future__ import annotations

from typing import Any

DEMO_CONFIG: dict[str, Any] = {
    "experiment": "demo-digits-mlp",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [500, 500]},
    "train": {"epochs": 30, "batch_size": 100, "lr": 1e-3},
    "selection": "best_dev",
    # Photo patches at the digits' size: how well the classifier tells them from digits, offline.
    "ood": [{"data": "patches"}],
}
