"""A temperature fit that stops at a bound of its range (no minimum inside it: a dev split
predicted all right drives T to its floor, and then every scaled probability is near 0 or 1) is
said: the check's record and the summary name the bound, and the run ends with one warning line on
stderr naming the fix; an ordinary fit says nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from labelemb.cli import main
from labelemb.metrics import TEMPERATURE_RANGE, fit_temperature, temperature_bound
from labelemb.tasks.calibration import ScaledCalibration

pytestmark = pytest.mark.usefixtures("one_thread")


def confident(labels: torch.Tensor, classes: int = 3) -> torch.Tensor:
    """Logits that put 8 more on each label's class than on any other."""
    generator = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(len(labels), classes, generator=generator, dtype=torch.float64)
    return 8.0 * torch.nn.functional.one_hot(labels, classes).double() + noise


def recorded(temperature: float) -> dict:
    calibration = ScaledCalibration(temperature)
    labels = torch.arange(12) % 3
    calibration.add(confident(labels), labels)
    return calibration.record("test")


def test_a_fit_on_logits_all_right_and_confident_is_at_the_floor_and_recorded():
    labels = torch.arange(30) % 3
    floor = fit_temperature(confident(labels), labels)
    assert floor == pytest.approx(TEMPERATURE_RANGE[0]) and temperature_bound(floor) == "floor"
    assert recorded(floor)["temperature_at_bound"] == "floor"
    ceiling = fit_temperature(confident((labels + 1) % 3), labels)  # all wrong: softer is better
    assert temperature_bound(ceiling) == "ceiling" and recorded(ceiling)["temperature_at_bound"] == "ceiling"
    # An ordinary fit, and no fit at all, record no bound.
    generator = torch.Generator().manual_seed(1)
    logits = 3.0 * torch.randn(400, 5, generator=generator, dtype=torch.float64)
    right = torch.rand(400, generator=generator) < 0.7
    mixed = torch.where(right, logits.argmax(1), torch.randint(0, 5, (400,), generator=generator))
    ordinary = fit_temperature(logits, mixed)
    assert TEMPERATURE_RANGE[0] * 2 < ordinary < TEMPERATURE_RANGE[1] / 2
    assert temperature_bound(ordinary) is None and "temperature_at_bound" not in recorded(ordinary)
    assert temperature_bound(None) is None


def two_shades(folder, spread: float, dev: int) -> None:
    """An .npz of dark and light 6x6 images (train 60, dev ``dev``, test 20), ``spread`` apart in
    noise, and a config that learns them, written to ``folder``."""
    arrays = {}
    for split, n, seed in (("train", 60, 0), ("dev", dev, 1), ("test", 20, 2)):
        labels = np.arange(n) % 2
        pixels = np.random.default_rng(seed).normal(60 + 130 * labels[:, None, None], spread, (n, 6, 6))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = np.clip(pixels, 0, 255).astype(np.uint8), labels
    np.savez(folder / "set.npz", **arrays)
    files = {"format": "npz", "path": "set.npz", "cache_dir": str(folder / "cache")}
    raw = {
        "experiment": "bound",
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "mlp", "hidden": [8]},
        "method": {"name": "onehot"},
        "train": {"epochs": 10, "batch_size": 6, "lr": 0.05},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def train_shades(folder, capsys) -> tuple[dict, list[dict], str]:
    """The summary, the check records and stderr of a run on :func:`two_shades`' data."""
    out = folder / "runs"
    config = str(folder / "config.yaml")
    assert main(["train", "--config", config, "--output-dir", str(out), "--no-progress"]) == 0
    run = out / "bound" / "onehot" / "seed0"
    summary = json.loads((run / "summary.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return summary, records, capsys.readouterr().err


def test_a_run_whose_small_dev_split_is_all_right_records_the_floor_and_warns(tmp_path, capsys):
    two_shades(tmp_path, spread=20.0, dev=6)
    summary, records, err = train_shades(tmp_path, capsys)
    assert summary["selected_dev_error"] == 0.0 and summary["selected_temperature"] == TEMPERATURE_RANGE[0]
    assert summary["selected_temperature_at_bound"] == "floor"
    selected = next(r for r in records if r["step"] == summary["selected_step"])
    assert selected["temperature_at_bound"] == "floor"
    lines = [line for line in err.splitlines() if "temperature fit on the dev split" in line]
    assert len(lines) == 1
    assert "hit its floor 0.01" in lines[0]
    assert "(6 examples) is predicted (almost) entirely right" in lines[0]
    assert "near 0 or 1 and overconfident" in lines[0] and "larger dev split" in lines[0]
    assert "data.files.dev_fraction" in lines[0]


def test_a_run_with_mistakes_on_dev_fits_an_ordinary_temperature_and_does_not_warn(tmp_path, capsys):
    two_shades(tmp_path, spread=90.0, dev=30)
    summary, records, err = train_shades(tmp_path, capsys)
    assert summary["selected_dev_error"] > 0 and temperature_bound(summary["selected_temperature"]) is None
    assert "selected_temperature_at_bound" not in summary
    assert not any("temperature_at_bound" in record for record in records)
    assert "temperature fit on the dev split" not in err


@pytest.mark.parametrize(
    ("bound", "said", "not_said"),
    [
        ("floor", "a larger dev split", "network, not the dev split"),
        ("ceiling", "wrong predictions being as confident as the right ones", "a larger dev split"),
    ],
)
def test_the_warning_names_the_cause_of_each_bound(caplog, bound, said, not_said):
    from types import SimpleNamespace

    from labelemb.training.results import warn_if_temperature_at_bound

    run = SimpleNamespace(plan=SimpleNamespace(method=SimpleNamespace(name="nls"), seed=1))
    summary = {"selected_temperature_at_bound": bound, "selected_step": 40}
    with caplog.at_level("WARNING"):
        warn_if_temperature_at_bound(run, summary, SimpleNamespace(dev=list(range(50))))
    (message,) = [record.getMessage() for record in caplog.records]
    assert message.startswith("nls (seed 1): the temperature fit") and "(50 examples)" in message
    assert said in message and not_said not in message
