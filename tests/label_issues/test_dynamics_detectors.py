"""label-issues' training dynamics (issue 101, part 2): one more run of the config trains on every
training row, and its steps' margins and losses give the in-sample detectors aum, final_margin,
final_loss and first_learned. The flipped rows of a small file lead the list ranked by AUM; each
row's scores are its own run's tables; every row had every epoch's pass; the detectors are judged
by scikit-learn beside cleanlab's; asking for one without --dynamics is refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

import labelemb
from labelemb.cli import main
from labelemb.label_issues import DETECTORS, DYNAMICS_DETECTORS, LabelIssuesError
from labelemb.label_issues import dynamics as dynamics_module
from labelemb.label_issues.dynamics import dynamics_scores
from labelemb.label_issues.listing import LIST_CSV, SUMMARY_JSON
from labelemb.rundir import RunDir
from labelemb.training import dynamics_of

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {
    "fruit": ["apple", "pear", "plum", "fig", "lime", "kiwi"],
    "tool": ["saw", "drill", "hammer", "wrench", "file", "chisel"],
    "bird": ["crow", "owl", "wren", "robin", "swan", "gull"],
}
ROWS, FLIPS, EPOCHS = 120, 8, 5


def write_file(path: Path, count: int, seed: int, flips: int) -> list[dict[str, str]]:
    """A CSV (text, label, clean) of texts of :data:`WORDS`' classes, ``flips`` labels moved to
    another class (``clean`` keeps the true one)."""
    generator = np.random.default_rng(seed)
    names = list(WORDS)
    rows = []
    for _ in range(count):
        label = names[int(generator.integers(3))]
        rows.append({"text": " ".join(generator.choice(WORDS[label], 4)), "label": label, "clean": label})
    for i in generator.choice(count, flips, replace=False):
        rows[i]["label"] = names[(names.index(rows[i]["clean"]) + 1 + int(generator.integers(2))) % 3]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "clean"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def raw_config(folder: Path) -> dict[str, Any]:
    files = {"train": "train.csv", "test": "test.csv", "dev_fraction": 0.1, "clean_label_column": "clean"}
    return {
        "experiment": "dynamics",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": EPOCHS, "batch_size": 10, "lr": 0.05, "progress": False},
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The file, its search with the dynamics (2 folds, ranked by AUM), and the rows the dynamics
    run trained on (their file rows)."""
    folder = tmp_path_factory.mktemp("dynamics")
    table = write_file(folder / "train.csv", ROWS, 0, FLIPS)
    write_file(folder / "test.csv", 30, 1, 0)
    trained: list[set[int]] = []
    real_train = dynamics_module.train

    def recording(run, *, dataset, progress):
        trained.append(set(dataset.train.origins.rows.tolist()))
        return real_train(run, dataset=dataset, progress=progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamics_module, "train", recording)
        issues = labelemb.find_label_issues(
            raw_config(folder), folds=2, dynamics=True, rank_by="aum", progress=False
        )
    return folder, table, issues, trained


def test_the_flipped_rows_lead_by_aum_and_the_run_trained_on_every_row(searched):
    _, table, issues, trained = searched
    numbers = {row["row"] for row in issues.rows}
    assert trained == [numbers]  # one run, on every listed row (dev was carved from the file)
    flipped = {i + 1 for i, row in enumerate(table) if row["label"] != row["clean"]} & numbers
    assert flipped and {row["row"] for row in issues.rows[: len(flipped)]} == flipped
    assert issues.summary["rank_by"] == "aum"
    # The list's score is AUM; every other detector, cleanlab's and the dynamics', has its column.
    others = {*DETECTORS, *DYNAMICS_DETECTORS} - {"aum"}
    assert all(others <= set(row) and "aum" not in row for row in issues.rows)


def test_each_rows_scores_are_its_runs_tables(searched):
    _, _, issues, _ = searched
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    tables = dynamics_of(RunDir(summary["dynamics_run"]).read_checkpoint())
    # Every row had one pass an epoch; the tables' order is the training split's, as the list's rows.
    assert tables["passes"].tolist() == [EPOCHS] * len(issues.rows)
    scores = dynamics_scores({name: table.numpy() for name, table in tables.items()})
    np.testing.assert_allclose(scores["aum"], tables["margin_sum"].double().numpy() / EPOCHS)
    np.testing.assert_allclose(scores["final_loss"], -tables["last_loss"].double().numpy())
    np.testing.assert_allclose([row["score"] for row in issues.rows], np.sort(scores["aum"]))
    for name in ("final_margin", "final_loss", "first_learned"):
        np.testing.assert_allclose(sorted(row[name] for row in issues.rows), np.sort(scores[name]))
    # A row first learned at epoch e scores -e; a row not learned at its last pass, -(epochs + 1).
    assert {row["first_learned"] for row in issues.rows} <= {-float(e) for e in range(1, EPOCHS + 2)}


def test_the_dynamics_are_judged_beside_cleanlabs(searched):
    _, _, issues, _ = searched
    judged = issues.judged
    assert set(judged["detectors"]) == {*DETECTORS, *DYNAMICS_DETECTORS}
    wrong = np.array([row["wrong"] for row in issues.rows])
    for name in DYNAMICS_DETECTORS:
        scores = np.array([row["score" if name == "aum" else name] for row in issues.rows])
        figures = judged["detectors"][name]
        assert figures["auroc"] == pytest.approx(100 * roc_auc_score(wrong, -scores))
        # Its own flagged set: its rows of lowest score, as many as cleanlab estimates wrong.
        lowest = np.zeros(len(scores), dtype=bool)
        lowest[np.argsort(scores, kind="stable")[: issues.estimated_wrong]] = True
        assert figures["f1_at_estimate"] == pytest.approx(100 * f1_score(wrong, lowest))
    assert "aum: AUROC" in "\n".join(issues.lines())


def test_the_command_ranks_by_aum_with_dynamics_and_refuses_it_without(searched, capsys):
    folder, _, issues, _ = searched
    config = folder / "dynamics.yaml"
    config.write_text(json.dumps(raw_config(folder)), encoding="utf-8")  # JSON is YAML
    base = ["label-issues", "--config", str(config), "--folds", "2", "--no-progress", "--rank-by", "aum"]
    assert main([*base, "--dynamics", "--top", "3"]) == 0  # the finished runs read back
    first = issues.rows[0]
    assert f"1. flagged {first['file']}, row {first['row']}" in capsys.readouterr().out
    with (issues.folder / LIST_CSV).open(newline="", encoding="utf-8") as handle:
        assert [int(row["row"]) for row in csv.DictReader(handle)] == [row["row"] for row in issues.rows]
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'aum'" in err and "--dynamics" in err


def test_a_dynamics_detector_without_dynamics_is_refused_before_any_training(tmp_path):
    raw = raw_config(tmp_path)
    with pytest.raises(LabelIssuesError, match="--dynamics") as error:
        labelemb.find_label_issues(raw, folds=2, rank_by="first_learned", progress=False)
    assert "\n" not in str(error.value) and not (tmp_path / "runs").exists()
    with pytest.raises(LabelIssuesError, match="known: .*aum.*first_learned"):
        labelemb.find_label_issues(raw, folds=2, rank_by="area", progress=False)


def test_rows_never_trained_on_and_a_diverged_run_are_refused_in_one_line():
    tables = {
        "margin_sum": np.array([1.0, 2.0]),
        "passes": np.array([2, 0]),
        "last_margin": np.array([0.5, 1.0]),
        "last_loss": np.array([0.1, 0.2]),
        "last_unlearned": np.array([0, 0]),
    }
    with pytest.raises(LabelIssuesError, match="1 training row") as error:
        dynamics_scores(tables)
    assert "\n" not in str(error.value)
    tables["passes"] = np.array([2, 2])
    tables["last_loss"] = np.array([np.nan, 0.2])
    with pytest.raises(LabelIssuesError, match="diverged"):
        dynamics_scores(tables)


def test_the_dynamics_run_keeps_its_checkpoint_where_the_config_drops_them(tmp_path):
    """The dynamics are read from the run's checkpoint: train.keep_checkpoint=false (the TF-IDF
    configs') still drops the fold runs' checkpoints, not the one the list is scored from (which
    made --dynamics fail, and fail again after the advised deletion)."""
    write_file(tmp_path / "train.csv", 60, 2, 4)
    write_file(tmp_path / "test.csv", 15, 3, 0)
    config = raw_config(tmp_path)
    config["train"] = {**config["train"], "epochs": 2, "keep_checkpoint": False}
    issues = labelemb.find_label_issues(config, folds=2, dynamics=True, rank_by="aum", progress=False)
    assert issues.summary["rank_by"] == "aum" and len(issues.rows) == 54  # dev carved from the 60
    run = Path(issues.summary["dynamics_run"])
    assert (run / "checkpoint.pt").is_file()
    folds = sorted((issues.folder / "folds").glob("fold*/*/seed*"))
    assert folds and all(not (fold / "checkpoint.pt").exists() for fold in folds)
