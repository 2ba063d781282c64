"""Where the grid's runs train (labelemb.sweep.executors): units that carry their config's folder,
the local executor's processes and devices, and one-line errors for what it cannot do."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pytest
import torch

from labelemb.assembly import plan_run
from labelemb.cli import main
from labelemb.sweep.executors import ExecutorError, LocalExecutor, Unit, run_unit, visible_devices
from labelemb.training import load_config

WORDS = {"a": "alpha beta gamma", "b": "delta epsilon zeta"}


def write_project(folder):
    """A config in ``folder`` naming its data relative to itself, as docs/your-data.md says."""
    (folder / "data").mkdir(parents=True)
    for split, copies in (("train", 12), ("test", 4)):
        rows = [f'"{WORDS[label]} {i}",{label}' for i in range(copies) for label in WORDS]
        (folder / "data" / f"{split}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    config = folder / "my.yaml"
    config.write_text(
        "data:\n  name: files\n  files: {train: data/train.csv, test: data/test.csv, dev_fraction: 0.25}\n"
        "model: {name: bag_of_words}\n"
        "train: {epochs: 2, batch_size: 8}\n"
    )
    return config


def test_a_config_folder_travels_with_every_unit_to_the_worker_processes(tmp_path, monkeypatch, capsys):
    """Relative data paths resolve beside the config file in a worker as in `labelemb train`
    (before, `--jobs 2` lost the config's folder: "train file data/train.csv not found")."""
    config = write_project(tmp_path / "proj")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    common = [
        "compare",
        "--config",
        "../proj/my.yaml",
        "--methods",
        "onehot,label_smoothing",
        "--no-progress",
    ]
    assert main([*common, "--jobs", "2", "--output-dir", str(tmp_path / "two")]) == 0, capsys.readouterr().err
    assert main([*common, "--jobs", "1", "--output-dir", str(tmp_path / "one")]) == 0
    for method in ("onehot", "label_smoothing"):
        runs = [
            json.loads(
                (tmp_path / where / "demo" / method / "seed0" / "metrics.jsonl").read_text().splitlines()[-1]
            )
            for where in ("one", "two")
        ]
        assert runs[0]["step"] == runs[1]["step"] > 0
    assert Unit.of([plan_run(load_config(config))]).configs[0].source_folder == str(config.parent.resolve())


def test_a_unit_carries_its_plans_with_their_folder_and_trains_them(tmp_path):
    """A unit crosses to a worker as it is pickled: the driver's plans, the config file's folder
    with them, trained without being planned again."""
    config = load_config(
        write_project(tmp_path / "proj"), [f"output_dir={tmp_path / 'runs'}", "train.progress=false"]
    )
    sent = Unit.of([plan_run(config), plan_run(config.with_seed(1))], batched=True)
    unit = pickle.loads(pickle.dumps(sent))
    assert unit.label() == "label_embedding seeds 0-1"
    for got, want in zip(unit.plans, sent.plans):
        assert replace(got, folder=None) == replace(want, folder=None)
        assert got.folder.path == want.folder.path
    assert [c.seed for c in unit.configs] == [0, 1] and unit.configs[0].source_folder == config.source_folder
    summaries = run_unit(unit)
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["batched_seeds"] == 2 for s in summaries)


def test_the_local_executor_shares_the_cpu_among_its_jobs_or_spreads_over_the_gpus():
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert visible_devices(None) == ([f"cuda:{i}" for i in range(gpus)] or ["cpu"])
    assert visible_devices(["cpu"]) == ["cpu"]
    if gpus:
        assert LocalExecutor(jobs=3, runs_per_device=2).slots() == [
            f"cuda:{i}" for i in range(gpus) for _ in (0, 1)
        ]
    else:
        assert LocalExecutor(jobs=3).slots() == [None, None, None]
        assert LocalExecutor(jobs=3, devices=["cpu"], runs_per_device=2).slots() == [None, None, None]


def test_a_device_this_machine_lacks_is_one_line_before_any_run(tmp_path, capsys):
    with pytest.raises(ExecutorError, match="not one of this machine's"):
        visible_devices(["cuda:7"])
    with pytest.raises(ExecutorError, match="is not a device"):
        visible_devices(["gpu0"])
    code = main(
        [
            "compare",
            "--methods",
            "onehot",
            "--devices",
            "cuda:7",
            "--output-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cuda:7" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "demo-digits-mlp").exists()


def test_a_ray_address_without_the_ray_executor_is_refused(tmp_path, capsys):
    code = main(["compare", "--methods", "onehot", "--ray-address", "auto", "--output-dir", str(tmp_path)])
    assert code == 2 and "--executor ray" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare", "tune"])
def test_devices_with_the_ray_executor_are_refused_before_anything_trains(tmp_path, capsys, command):
    """Ray picks each run's GPU on the cluster; before, --devices was ignored there (exit 0, the
    runs trained on the CPU of an embedded Ray)."""
    code = main(
        [command, "--methods", "onehot", "--executor", "ray", "--devices", "cuda:0", "--seeds", "1"]
        + ["--output-dir", str(tmp_path), "--no-progress", "train.epochs=1", "model.hidden=[8]"]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"labelemb {command}: error: --devices cuda:0 is for --executor local: under ")
    assert not (tmp_path / "demo-digits-mlp").exists()
