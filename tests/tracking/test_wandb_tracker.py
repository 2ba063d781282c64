"""train.log_to: wandb, offline: a run's config, every series and its results, read back from the
offline run's files with W&B's own reader (``wandb leet inspect --json``); a run killed and resumed
continues the same W&B run and logs each step once; its evaluation is added to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labelemb.cli import main
from labelemb.training import build_config, train


class Interrupted(Exception):
    """Raised from ``on_checkpoint`` to stop a run the way a crash would."""


def stop_after_first_check(progress: Any) -> None:
    raise Interrupted


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B offline, its files in a folder of the test's; fails (never skips) without wandb."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        pytest.fail('wandb is not installed: pip install -e ".[wandb]"', pytrace=False)
    folder = tmp_path / "wandb-files"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(folder))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return folder


def tiny(tmp_path: Path) -> Any:
    raw = {
        "experiment": "trk-wandb",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 2, "eval_every": 600, "progress": False, "log_to": ["wandb"]},
        "ood": [{"data": "patches"}],
    }
    return build_config(raw)


def read_wandb(folder: Path, run_id: str) -> list[dict[str, Any]]:
    """Every record of every session of W&B run ``run_id`` under ``folder``, in order, as W&B's own
    reader prints them."""
    records: list[dict[str, Any]] = []
    # A session started within the second of the last gets W&B's folder name with "-1" after the id.
    for run_file in sorted(folder.glob(f"wandb/offline-run-*-{run_id}*/run-{run_id}.wandb")):
        done = subprocess.run(
            [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        records += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return records


def history(records: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record["type"] == "history":
            item, step = record["history"]["item"], record["history"]["step"]["num"]
            for key, value in item.items():
                if not key.startswith("_"):
                    series.setdefault(key, []).append((int(step), value))
    return series


def numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The test's own reading of which values are series (nested keys joined by /)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = float(value)
    return out


def flat_config(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(flat_config(value, f"{prefix}{key}."))
        elif isinstance(value, (str, int, float, bool)):
            out[prefix + key] = value
        else:
            out[prefix + key] = json.dumps(value)
    return out


def test_wandb_continues_the_same_run_with_every_series_once_the_config_and_the_results(tmp_path, offline):
    config = tiny(tmp_path)
    with pytest.raises(Interrupted):
        train(config, on_checkpoint=stop_after_first_check)
    run_dir = config.run_dir()
    train(config)
    state = json.loads((run_dir / "trackers.json").read_text())["wandb"]
    records = read_wandb(offline, state["id"])
    runs = [r["run"] for r in records if r["type"] == "run"]
    assert len(runs) == 2 and {r["run_id"] for r in runs} == {state["id"]}  # killed, then continued
    assert {r["display_name"] for r in runs} == {"label_embedding-seed0"}
    assert runs[0]["project"] == "trk-wandb"
    config_read = {k: v for k, v in runs[0]["config"]["update"].items() if not k.startswith("_")}
    assert config_read == flat_config(config.model_dump(mode="json"))
    read = history(records)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) >= 3 and state["last_step"] == metrics[-1]["step"]
    for key in {k for record in metrics for k in numbers(record)} - {"step"}:
        want = [(r["step"], numbers(r)[key]) for r in metrics if key in numbers(r)]
        assert [s for s, _ in read[key]] == [s for s, _ in want], key  # each step once, none missing
        assert [v for _, v in read[key]] == pytest.approx([v for _, v in want], rel=1e-6), key
    summary = json.loads((run_dir / "summary.json").read_text())
    for key, value in numbers(summary, "summary/").items():
        assert read[key] == [(metrics[-1]["step"], pytest.approx(value, rel=1e-6))], key
    # Calibration raw and scaled, and the evaluation the CLI adds once the run is judged.
    assert {"test_ece", "test_ece_scaled", "temperature"} <= set(read)


def test_the_evaluation_of_a_run_goes_to_its_own_wandb_run(tmp_path, offline):
    config = tiny(tmp_path)
    argv = ["train", "--config", str(tmp_path / "c.yaml"), "--no-progress"]
    (tmp_path / "c.yaml").write_text(json.dumps(config.model_dump(mode="json")))
    assert main(argv) == 0
    run_dir = config.run_dir()
    state = json.loads((run_dir / "trackers.json").read_text())["wandb"]
    read = history(read_wandb(offline, state["id"]))
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert read["eval/selective_msp_aurc"] == [
        (state["last_step"], pytest.approx(evaluation["test"]["selective_msp_aurc"], rel=1e-9))
    ]
    scod = evaluation["ood"]["patches"]["figures"]["scod_msp_aurc"]
    assert read["eval/ood/patches/scod_msp_aurc"][0][1] == pytest.approx(scod, rel=1e-9)


def test_a_comparison_s_table_goes_to_a_wandb_run_of_its_own(tmp_path, offline):
    from labelemb.tracking import WandbTracker

    experiment = tmp_path / "runs" / "trk-wandb"
    experiment.mkdir(parents=True)
    (experiment / "comparison.md").write_text("| method | error % |\n| --- | ---: |\n| onehot | 9.50 |\n")
    (experiment / "comparison.csv").write_text("method,selected_mean\nonehot,9.5\n")
    WandbTracker.log_table(tiny(tmp_path), experiment, "comparison")
    run_id = json.loads((experiment / "trackers.json").read_text())["wandb-comparison"]["id"]
    records = read_wandb(offline, run_id)
    runs = [r["run"] for r in records if r["type"] == "run"]  # started, then its notes set
    assert {r["run_id"] for r in runs} == {run_id} and runs[0]["display_name"] == "comparison"
    assert runs[0]["project"] == "trk-wandb"
    assert "| onehot | 9.50 |" in json.dumps(records)  # the table, as the run's notes
    artifacts = [r for r in records if r["type"] == "artifact"]
    assert artifacts and "comparison.csv" in json.dumps(artifacts)
