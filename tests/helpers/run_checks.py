"""A run's folder read back, and the runs that must be the very same run: a run crashed and resumed
against an uninterrupted one (identical numbers and weights), and a run under torchrun.

The test files share these (``from run_checks import read_metrics``): tests/ is on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from labelemb.training import train

#: The fields that time a run: a record's wall and training seconds, the summary's seconds per epoch.
TIMING = {"wall_seconds", "train_seconds", "seconds_per_epoch"}

#: The run ``launch`` trains: digits, a 64-32 MLP, two epochs, a check every 400 examples.
TORCHRUN_RUN = {
    "experiment": "ddp",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "train": {"epochs": 2, "batch_size": 100, "eval_every": 400, "progress": False},
}


class Interrupted(Exception):
    """Raised from ``on_checkpoint`` to stop a run the way a crash would."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's check records, in order."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def load_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)


def untimed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without their timing, which differs between two runs of the same numbers."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def summary_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without its timing."""
    return {k: v for k, v in summary.items() if k not in TIMING}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"weights {key} differ"


def assert_same_resumed_run(resumed: Path, clean: Path) -> None:
    """Same metrics (minus timing), summary numbers, weights and label representation."""
    assert untimed(read_metrics(resumed)) == untimed(read_metrics(clean))
    assert summary_numbers(read_summary(resumed)) == summary_numbers(read_summary(clean))
    assert_same_weights(load_weights(resumed), load_weights(clean))
    rep_resumed = load_file(str(resumed / "label_representation.safetensors"))
    rep_clean = load_file(str(clean / "label_representation.safetensors"))
    assert rep_resumed.keys() == rep_clean.keys()
    for key in rep_clean:
        assert torch.equal(rep_resumed[key], rep_clean[key])


def interrupt_at_first_checkpoint(config, dataset, epoch: int = 0) -> dict[str, int]:
    """Train until the first checkpoint of ``epoch`` is on disk, then crash; return where it was."""
    seen = []

    def crash(progress) -> None:
        if progress.epoch < epoch:
            return
        seen.append({"epoch": progress.epoch, "batch": progress.batch, "step": progress.step})
        raise Interrupted

    with pytest.raises(Interrupted):
        train(config, dataset=dataset, on_checkpoint=crash)
    assert len(seen) == 1
    return seen[0]


def launch(tmp_path: Path, method: str, processes: int) -> Path:
    """Train ``TORCHRUN_RUN`` with ``method`` in one plain process or under torchrun with
    ``processes`` CPU processes (gloo); return its run folder."""
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(TORCHRUN_RUN))
    out = tmp_path / f"p{processes}"
    args = ["train", "--config", str(config), "--method", method, "--seed", "0", "--output-dir", str(out)]
    if processes == 1:
        command = [sys.executable, "-m", "labelemb", *args]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            "labelemb",
            *args,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return out / "ddp" / method / "seed0"
