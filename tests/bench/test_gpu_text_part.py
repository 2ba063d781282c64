"""The GPU suite's text part (issue 103), on the CPU: its two bench scripts run a few steps and write
every figure the suite reads, and ``bench/gpu.sh text`` stops at once, in one line, where there is
no CUDA, before it installs or writes anything."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from helpers.repo_paths import ROOT

BENCH = ROOT / "bench"


def bench_script(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``bench/NAME.py`` loaded as a module, with bench/ importable as the script itself has it."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_sections(folder: Path) -> None:
    """A tiny debian-sections/ (three sections, each with words of its own), laid out as the real."""
    words = {
        "admin": "server daemon log monitor config",
        "games": "play level puzzle arcade board",
        "libs": "library shared runtime module binding",
    }
    (folder / "debian-sections").mkdir(parents=True)
    for split, count in (("train", 40), ("validation", 8), ("test", 8)):
        with gzip.open(folder / "debian-sections" / f"{split}.csv.gz", "wt", newline="") as file:
            table = csv.writer(file)
            table.writerow(["text", "label"])
            for i in range(count):
                for label, vocabulary in words.items():
                    terms = vocabulary.split()
                    table.writerow([f"{terms[i % 5]} {terms[(i + 2) % 5]} package with files", label])


@pytest.fixture
def own_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scripts' temporary folders, made here so that a test can see them deleted."""
    folder = tmp_path / "temporary"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_text_tfidf_writes_each_method_s_figures(tmp_path, monkeypatch, own_tempdir):
    write_sections(tmp_path / "data")
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))  # the TF-IDF is cached there
    script = bench_script("text_tfidf", monkeypatch)
    out = tmp_path / "text-tfidf.json"
    script.main(
        ["--device", "cpu", "--max-steps", "3", "--seeds", "2", "--data-dir", str(tmp_path / "data")]
        + ["--json", str(out), "train.batch_size=16"]
    )
    record = json.loads(out.read_text(encoding="utf-8"))
    assert (record["device"], record["gpu"], record["max_steps"], record["epochs"]) == ("cpu", None, 3, 1)
    assert record["config"].endswith("configs/debian-sections-tfidf.yaml")
    assert list(record["methods"]) == ["onehot", "label_embedding"]
    for method, figures in record["methods"].items():
        assert figures["seeds"] == [0, 1] and figures["side_by_side"], method
        # 120 texts in batches of 16: the 3 steps stop within the first epoch.
        assert figures["steps"] == 3 and 0 < figures["epochs_trained"] < 1
        assert figures["seconds_per_epoch"] > 0 and figures["peak_memory_mb"] is None
        together = figures["seconds_per_epoch"] * figures["epochs_trained"] * 2
        assert figures["train_seconds"] == pytest.approx(together)
        assert figures["wall_seconds"] > figures["train_seconds"]
        assert len(figures["test_error"]) == len(figures["final_test_error"]) == 2
        assert all(0 <= error <= 100 for error in figures["test_error"] + figures["final_test_error"])
        assert figures["test_error_mean"] == pytest.approx(statistics.fmean(figures["test_error"]))
        assert figures["tfidf_seconds"] is not None and figures["entries_seconds"] is not None
    left = list(own_tempdir.glob("labelemb-bench-*"))
    assert not left, f"the run folders (each seed's whole term table) are left: {left}"


def test_label_issues_cost_sets_the_list_against_the_seeds(
    tmp_path, monkeypatch, own_tempdir, mnist_dir, fashion_mnist_dir
):
    script = bench_script("label_issues_cost", monkeypatch)
    out = tmp_path / "label-issues.json"
    script.main(
        ["--device", "cpu", "--max-steps", "2", "--folds", "2", "--seeds", "2", "--json", str(out)]
        + ["data.max_train_pairs=600"]
    )
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["config"].endswith("configs/fashion-mnist-mlp.yaml") and record["goal"] == 2.0
    assert {"noise.kind=symmetric", "noise.rate=0.4"} <= set(record["overrides"])
    seeds, found = record["seeds_batched"], record["label_issues"]
    assert seeds["method"] == found["method"] == "label_embedding"  # the config's
    assert seeds["seeds"] == [0, 1] and seeds["steps"] == 2 and seeds["peak_memory_mb"] is None
    assert 0 < seeds["train_seconds"] < seeds["wall_seconds"]
    assert found["folds"] == 2 and found["rows"] == 600 and found["rank_by"] == "self_confidence"
    assert 0.3 * 600 < found["wrong"] < 0.5 * 600  # 40 % flipped, some to their own class
    for figure in ("auroc", "auprc", "precision_at_true_count", "precision", "recall", "f1"):
        assert 0 <= found[figure] <= 100, figure
    assert found["flagged"] > 0 and found["estimated_wrong"] > 0
    assert 0 < found["seconds"] <= found["wall_seconds"]
    assert record["cost_ratio"] == pytest.approx(found["wall_seconds"] / seeds["wall_seconds"])
    assert not list(own_tempdir.glob("labelemb-bench-*"))


def gpu_sh(*arguments: str, out: Path) -> subprocess.CompletedProcess:
    """``bash bench/gpu.sh ARGUMENTS`` from the root, with this Python first and no CUDA device seen."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "PATH": path, "CUDA_VISIBLE_DEVICES": "", "OUT": str(out)}
    return subprocess.run(
        ["bash", "bench/gpu.sh", *arguments], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_the_text_part_stops_in_one_line_without_cuda(tmp_path):
    done = gpu_sh("text", out=tmp_path / "out")
    said = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1 and len(said) == 1, said
    line = r"bench/gpu\.sh: no CUDA device here \(torch \S+ sees none\): run it on a GPU machine"
    assert re.fullmatch(line, said[0]), said
    assert not (tmp_path / "out").exists()  # stopped before it made its folder or installed a wheel


def test_an_unknown_part_names_the_text_part():
    done = gpu_sh("texts", out=Path(tempfile.gettempdir()) / "unused")
    assert done.returncode == 2
    assert done.stdout.strip() == "bench/gpu.sh: unknown part 'texts': all, step, vocab or text"
