"""Runs that fail on purpose, for the tests of a grid's faults (tests/sweep/test_faults.py, and the
Ray cluster's driver in tests/sweep/test_ray.py): a config of the embedded digits whose backbone is
a ``custom`` factory kept beside it, which knows the run's seed (torch's initial seed, which the
trainer sets to it before building the network) and fails by it:

- seed 1: the factory raises (a bug: the run fails where it is built);
- seed 2: the first training step raises torch.OutOfMemoryError once (a marker file beside the
  config remembers it), as a GPU shared with other runs would; tried again alone, it trains;
- seed 3: every training step raises torch.OutOfMemoryError (it fails alone too);
- seed 0 and any other: trains.

The ``leaky`` factory sets process-wide state a run should not leave behind (float64 as torch's
default dtype, deterministic algorithms, an environment variable, one thread), then fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BACKBONE = """
import os
from pathlib import Path

import torch
from torch import nn

FOLDER = Path(__file__).parent


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            seed = torch.initial_seed()
            if seed == 3:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            marker = FOLDER / "seed-2-ran-out-of-memory"
            if seed == 2 and not marker.exists():
                marker.touch()
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.body(x)


def faulty():
    if torch.initial_seed() == 1:
        raise RuntimeError("a bug that seed 1 meets")
    return Net()


def leaky():
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.environ["LEAKED_BY_A_RUN"] = "1"
    raise RuntimeError("this run leaves the process changed")
"""


def write_project(folder: Path, factory: str = "faulty", epochs: int = 2) -> Path:
    """The backbone module and a config naming it, in ``folder``; the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "faultynets.py").write_text(BACKBONE)
    config = {
        "experiment": "faults",
        "data": {"name": "digits"},
        "model": {"name": "custom", "factory": f"faultynets:{factory}"},
        "train": {"epochs": epochs, "progress": False},
    }
    path = folder / f"{factory}.yaml"
    path.write_text(json.dumps(config))  # YAML reads JSON
    return path


def clean_config(output_dir: Path) -> dict[str, Any]:
    """A plain digits run (MLP 64-32, 2 epochs) that any process trains to the same numbers."""
    return {
        "experiment": "clean",
        "output_dir": str(output_dir),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 2, "progress": False},
    }


def threads_and_variable() -> tuple[int, str | None]:
    """In a worker: its torch threads, and the variable the ``leaky`` run sets (None: not set)."""
    import os

    import torch

    return torch.get_num_threads(), os.environ.get("LEAKED_BY_A_RUN")


def metrics(run: Path) -> list[dict[str, Any]]:
    """A run's evaluation records without their timings."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if not k.endswith("seconds")} for record in records]
