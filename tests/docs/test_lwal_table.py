"""examples/lwal_table.py: the LwAL paper's columns (best test accuracy, % of STD's time, AUAC),
checked against the runs' own records by hand."""

from __future__ import annotations

import importlib.util
import json
import statistics

import pytest
from helpers.repo_paths import EXAMPLES

from labelemb.analysis.compare import load_runs
from labelemb.training import train

SCRIPT = EXAMPLES / "lwal_table.py"


def load_script():
    spec = importlib.util.spec_from_file_location("lwal_table", SCRIPT)
    assert spec is not None and spec.loader is not None, f"{SCRIPT} is missing"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, digits):
    from labelemb.training import build_config

    output = tmp_path_factory.mktemp("runs")
    for method in ("onehot", "label_smoothing"):
        for seed in (0, 1):
            config = build_config(
                {
                    "experiment": "table",
                    "output_dir": str(output),
                    "seed": seed,
                    "data": {"name": "digits"},
                    "model": {"name": "mlp", "hidden": [16]},
                    "method": {"name": method},
                    "train": {"epochs": 3, "batch_size": 100, "eval_every": 400, "progress": False},
                }
            )
            train(config, dataset=digits)
    return output / "table"


def test_the_columns_are_the_records_by_hand(experiment, capsys):
    table = load_script()
    runs = load_runs(experiment)
    rows = {row["method"]: row for row in table.table_rows(runs, "onehot", "epochs")}
    records = {
        method: [
            [
                json.loads(line)
                for line in (experiment / method / f"seed{s}" / "metrics.jsonl").read_text().splitlines()
            ]
            for s in (0, 1)
        ]
        for method in ("onehot", "label_smoothing")
    }
    best = [max(100 - r["test_error"] for r in seed) for seed in records["label_smoothing"]]
    assert rows["label_smoothing"]["best"] == f"{statistics.fmean(best):.2f} ± {statistics.stdev(best):.2f}"
    # The baseline reaches its own best at its own time: 100 %.
    assert rows["onehot"]["time"] == "100"
    onehot_mean = [
        statistics.fmean(100 - s[i]["test_error"] for s in records["onehot"])
        for i in range(len(records["onehot"][0]))
    ]
    target = max(onehot_mean)
    smoothing_mean = [
        statistics.fmean(100 - s[i]["test_error"] for s in records["label_smoothing"])
        for i in range(len(records["label_smoothing"][0]))
    ]
    epochs = [r["epoch"] for r in records["onehot"][0]]
    base_at = epochs[next(i for i, v in enumerate(onehot_mean) if v >= target - 1e-9)]
    reached = [i for i, v in enumerate(smoothing_mean) if v >= target - 1e-9]
    want = "never" if not reached else f"{100 * epochs[reached[0]] / base_at:.0f}"
    assert rows["label_smoothing"]["time"] == want
    table.main([str(experiment), "--axis", "epochs"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("| method | seeds | best test acc. %") and len(printed) == 4
    assert printed[2].startswith("| onehot | 2 |")
