"""labelemb label-issues --methods/--seeds and labelemb.compare_label_issues (issue 101, part 4):
a CSV of texts with labels flipped on purpose (the true ones kept), searched by 2 folds for two
methods and two seeds. The table's figures are the lists' own judged figures as their
label_issues.json holds them, over seeds; p is scipy's Welch's t-test on them; a comparison asked
again reads the finished lists back instead of searching them; a list made with another config is
not read back; where the truth is unknown each list is still written; bad input is one line."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import labelemb
from labelemb.cli import main
from labelemb.config import ConfigError
from labelemb.label_issues import LabelIssuesError, comparison
from labelemb.label_issues.comparison import UNJUDGED_LINE, finished_list
from labelemb.label_issues.comparison_table import FLAGGED
from labelemb.label_issues.finding import _config
from labelemb.label_issues.listing import LIST_CSV, SUMMARY_JSON
from labelemb.rundir import RunDirError

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {
    "animal": ["cat", "dog", "horse", "cow", "sheep", "goat", "bird", "fish"],
    "vehicle": ["car", "bus", "train", "bike", "truck", "tram", "ship", "van"],
    "food": ["bread", "cheese", "apple", "rice", "soup", "pear", "cake", "milk"],
}
METHODS, SEEDS, FOLDS = ["onehot", "label_smoothing"], [0, 1], 2


def write_table(path: Path, count: int, seed: int, flips: int, clean: bool = True) -> None:
    """A CSV of texts of :data:`WORDS`' classes, ``flips`` labels moved to the next class; with
    ``clean``, a ``clean`` column keeps each true label. Each text mixes in a word of another class
    so that the fold models are not all perfect (their figures then vary with the seed)."""
    generator = np.random.default_rng(seed)
    names = list(WORDS)
    rows = []
    for i in range(count):
        label = names[i % 3]
        other = names[(i + 1 + int(generator.integers(2))) % 3]
        words = [*generator.choice(WORDS[label], 2), generator.choice(WORDS[other])]
        rows.append({"text": " ".join(words), "label": label, "clean": label})
    for i in generator.choice(count, flips, replace=False):
        rows[i]["label"] = names[(names.index(rows[i]["clean"]) + 1) % 3]
    fields = ["text", "label", "clean"] if clean else ["text", "label"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def raw_config(folder: Path, clean: bool = True) -> dict[str, Any]:
    files: dict[str, Any] = {"train": "train.csv", "test": "test.csv"}
    if clean:
        files["clean_label_column"] = "clean"
    return {
        "experiment": "flips",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 3, "batch_size": 10, "lr": 0.2, "progress": False},
    }


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """The table and a comparison of its lists: 2 methods x 2 seeds, 2 folds each."""
    folder = tmp_path_factory.mktemp("compared")
    write_table(folder / "train.csv", 120, 0, 24)
    write_table(folder / "test.csv", 30, 1, 0)
    result = labelemb.compare_label_issues(
        raw_config(folder), methods=METHODS, seeds=range(2), folds=FOLDS, progress=False
    )
    return folder, result


def read_lists(result: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """Each list's label_issues.json as its folder holds it."""
    return {key: json.loads((path / SUMMARY_JSON).read_text()) for key, path in result.folders.items()}


def judged_value(summary: dict[str, Any], detector: str, name: str) -> Any:
    judged = summary["judged"]
    if detector == FLAGGED:
        return judged["estimated_wrong"] if name == "estimated_wrong" else judged["flagged"][name]
    return judged["detectors"][detector][name]


def test_the_tables_figures_are_the_lists_own_and_p_is_welchs(compared):
    folder, result = compared
    assert result.judged and result.methods == METHODS and result.seeds == SEEDS
    lists = read_lists(result)
    assert list(lists) == [(m, s) for m in METHODS for s in SEEDS]
    for (method, seed), summary in lists.items():
        assert (summary["method"], summary["seed"], summary["folds"]) == (method, seed, FOLDS)
    detectors = {row["detector"] for row in result.rows}
    assert detectors == {"self_confidence", "normalized_margin", "confidence_weighted_entropy", FLAGGED}
    tested_p = 0
    for row in result.rows:
        for name, figure in row["figures"].items():
            if name == "minutes":
                expected = [lists[(row["method"], s)]["seconds"] / 60 for s in SEEDS]  # no dynamics run here
            else:
                expected = [judged_value(lists[(row["method"], s)], row["detector"], name) for s in SEEDS]
            assert figure["values"] == pytest.approx(expected), (row["detector"], row["method"], name)
            assert figure["mean"] == pytest.approx(statistics.fmean(expected))
            assert figure["std"] == pytest.approx(statistics.stdev(expected))
            if row["method"] == METHODS[0]:
                assert figure["p"] is None
                continue
            base = result.figure(METHODS[0], row["detector"], name)["values"]
            if statistics.variance(expected) == 0 and statistics.variance(base) == 0:
                continue  # scipy has no spread to weigh (welch_p's own rule, tested with it)
            scipy_p = stats.ttest_ind(expected, base, equal_var=False).pvalue
            assert figure["p"] == pytest.approx(scipy_p), (row["detector"], name)
            tested_p += 1
    assert tested_p >= 10  # most figures vary over the seeds: p is tested, not skipped
    # The files: the JSON holds the rows, the Markdown shows each method under each detector.
    record = json.loads(result.json_path.read_text())
    assert result.json_path == folder / "runs" / "flips" / "label-issues" / "comparison-k2.json"
    assert record["rows"] == json.loads(json.dumps(result.rows)) and record["against"] == "onehot"
    table = result.markdown.read_text()
    auroc = result.figure("label_smoothing", "self_confidence", "auroc")
    shown = f"| self_confidence | label_smoothing | {auroc['mean']:.1f} ± {auroc['std']:.1f} (p "
    assert shown in table and "| flagged by prune_by_noise_rate | onehot |" in table


def test_a_comparison_asked_again_reads_its_finished_lists_back(compared, monkeypatch, capsys):
    folder, result = compared
    written = {key: (path / LIST_CSV).stat().st_mtime_ns for key, path in result.folders.items()}

    def searched(*args, **kwargs):
        raise AssertionError("a finished list was searched again")

    monkeypatch.setattr(comparison, "find_label_issues", searched)
    again = labelemb.compare_label_issues(
        raw_config(folder), methods=METHODS, seeds="0-1", folds=FOLDS, progress=False
    )
    assert sorted(again.read_back) == sorted(result.folders) and again.rows == json.loads(
        json.dumps(result.rows)
    )
    assert {key: (path / LIST_CSV).stat().st_mtime_ns for key, path in again.folders.items()} == written
    # The command reads them back too, and prints the table.
    config = folder / "flips.yaml"
    config.write_text(json.dumps(raw_config(folder)), encoding="utf-8")
    command = ["label-issues", "--config", str(config), "--folds", "2", "--no-progress"]
    assert main([*command, "--methods", "onehot,label_smoothing", "--seeds", "0-1"]) == 0
    out = capsys.readouterr().out
    assert "| detector | method | AUROC |" in out and "comparison-k2.md" in out


def test_only_an_unfinished_list_is_searched_again(compared, monkeypatch):
    folder, result = compared
    (result.folders[("label_smoothing", 1)] / "label-issues.html").unlink()  # as if stopped before it
    made = []
    real = comparison.find_label_issues

    def recording(run, **kwargs):
        made.append((run.method.name, run.seed))
        return real(run, **kwargs)

    monkeypatch.setattr(comparison, "find_label_issues", recording)
    again = labelemb.compare_label_issues(
        raw_config(folder), methods=METHODS, seeds=[0, 1], folds=FOLDS, progress=False
    )
    assert made == [("label_smoothing", 1)] and len(again.read_back) == 3


def test_a_list_made_with_another_config_is_not_read_back(compared):
    folder, _ = compared
    same = _config(raw_config(folder), [], {}, "onehot", 0, False)
    assert finished_list(same, FOLDS, "self_confidence", "prune_by_noise_rate", False, "train") is not None
    longer = _config(raw_config(folder), ["train.epochs=4"], {}, "onehot", 0, False)
    for run, choices in [
        (longer, ("self_confidence", "prune_by_noise_rate", False)),
        (same, ("normalized_margin", "prune_by_noise_rate", False)),
        (same, ("self_confidence", "both", False)),
        (same, ("self_confidence", "prune_by_noise_rate", True)),
    ]:
        assert finished_list(run, FOLDS, *choices, "train") is None, choices
    # Searched again, the list's first fold run, of the other config, is refused: nothing is overwritten.
    with pytest.raises(RunDirError, match=r"differs in: train.epochs 3 -> 4"):
        labelemb.compare_label_issues(
            raw_config(folder),
            methods=["onehot"],
            seeds=[0],
            folds=FOLDS,
            overrides=["train.epochs=4"],
            progress=False,
        )


def test_where_the_truth_is_unknown_each_list_is_written_and_the_command_says_so(tmp_path, capsys):
    write_table(tmp_path / "train.csv", 60, 2, 6, clean=False)
    write_table(tmp_path / "test.csv", 15, 3, 0, clean=False)
    raw = raw_config(tmp_path, clean=False)
    raw["train"]["epochs"] = 1
    config = tmp_path / "plain.yaml"
    config.write_text(json.dumps(raw), encoding="utf-8")
    command = ["label-issues", "--config", str(config), "--folds", "2", "--no-progress", "--seeds", "0-1"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == UNJUDGED_LINE and "| method | flagged | estimated wrong | minutes |" in out
    lists = tmp_path / "runs" / "flips" / "label-issues"
    for seed in (0, 1):
        assert (lists / f"onehot-k2-seed{seed}" / LIST_CSV).exists()
    record = json.loads((lists / "comparison-k2.json").read_text())
    assert record["judged"] is False and [row["detector"] for row in record["rows"]] == [FLAGGED]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--methods", "onehot,nope"], "unknown method 'nope'"),
        (["--methods", "onehot,elr", "--method", "elr"], "--method and --methods"),
        (["--seeds", "0-1", "--seed", "3"], "--seed and --seeds"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, options, words):
    monkeypatch.setattr(comparison, "find_label_issues", lambda *a, **k: pytest.fail("searched"))
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(raw_config(tmp_path)), encoding="utf-8")
    code = main(["label-issues", "--config", str(config), "--no-progress", *options])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err, err


def test_the_python_call_refuses_a_text_of_methods_and_an_unknown_method_before_training(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(comparison, "find_label_issues", lambda *a, **k: pytest.fail("searched"))
    with pytest.raises(LabelIssuesError, match=r"methods=\['onehot', 'elr'\]"):
        labelemb.compare_label_issues(raw_config(tmp_path), methods="onehot,elr")
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        labelemb.compare_label_issues(raw_config(tmp_path), methods=["onehot", "nope"])
    with pytest.raises(LabelIssuesError, match="more than once"):
        labelemb.compare_label_issues(raw_config(tmp_path), methods=["onehot", "onehot"])


def test_a_list_of_a_file_edited_since_is_not_read_back(compared, tmp_path):
    """The fold runs hold the same config (the file's name) but were trained on the file as it was:
    the list is not read back for the edited file (results never stale); searched again, its first
    fold run is refused as a run of other data, and nothing is overwritten."""
    folder, result = compared
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("train.csv", "test.csv"):
        (copy / name).write_bytes((folder / name).read_bytes())
    shutil.copytree(folder / "runs", copy / "runs")
    same = _config(raw_config(copy), [], {}, "onehot", 0, False)
    assert finished_list(same, FOLDS, "self_confidence", "prune_by_noise_rate", False, "train") is not None
    with (copy / "train.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["label"] = "food" if rows[0]["label"] != "food" else "animal"  # one label corrected by hand
    with (copy / "train.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert finished_list(same, FOLDS, "self_confidence", "prune_by_noise_rate", False, "train") is None
    kept = (copy / "runs" / "flips" / "label-issues" / "onehot-k2-seed0" / LIST_CSV).read_bytes()
    with pytest.raises(RunDirError, match="content differs"):
        labelemb.compare_label_issues(
            raw_config(copy), methods=["onehot"], seeds=[0], folds=FOLDS, progress=False
        )
    assert (copy / "runs" / "flips" / "label-issues" / "onehot-k2-seed0" / LIST_CSV).read_bytes() == kept
