"""label-issues on tag sets whose truth is known (issue 101): a clean CSV of tagged texts searched
with ``noise: {kind: remove_tags}``, so that the harness removes one tag from a tenth of its rows
and keeps the clean tag sets. The list carries each row's true tags, the rows and the (row, tag)
pairs are judged, and every judged figure is scikit-learn's on cleanlab's own scores of the saved
out-of-sample probabilities."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class
from helpers.tagged_texts import SPLITS, TAGGED_FILES, write_tagged_splits
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

import labelemb
from labelemb.label_issues import DETECTORS
from labelemb.label_issues.listing import PROBABILITIES_NPZ

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = dict((name, count) for name, count, _ in SPLITS)["train"]


def raw_config(folder: Path) -> dict[str, Any]:
    return {
        "experiment": "tag-noise",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": TAGGED_FILES},
        "model": {"name": "bag_of_words", "embedding_dim": 16, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 8, "batch_size": 10, "lr": 0.05, "progress": False},
        "noise": {"kind": "remove_tags", "rate": 0.1, "seed": 3},
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The clean training table's tag sets and its search (3 folds) with a tag removed from about
    10 % of its rows."""
    folder = write_tagged_splits(tmp_path_factory.mktemp("tag-noise"))
    with (folder / "train.csv").open(newline="", encoding="utf-8") as handle:
        table = [row["tags"].split() for row in csv.DictReader(handle)]
    return table, labelemb.find_label_issues(raw_config(folder), folds=3, progress=False)


def in_file_order(issues):
    """The listed rows in the training file's order (the saved arrays' order: dev is a file of its own)."""
    return sorted(issues.rows, key=lambda row: row["row"])


def test_each_row_lists_its_true_tags_and_the_rows_that_lost_one_lead(searched):
    table, issues = searched
    rows = in_file_order(issues)
    assert [sorted(row["true_tags"]) for row in rows] == [sorted(tags) for tags in table]
    lost = [sorted(set(row["true_tags"]) - set(row["given_tags"])) for row in rows]
    assert all(set(row["given_tags"]) <= set(row["true_tags"]) for row in rows)
    assert {len(tags) for tags in lost} == {0, 1}
    wrong = np.array([row["wrong"] for row in rows])
    assert wrong.tolist() == [bool(tags) for tags in lost] and 6 <= wrong.sum() <= 28
    scores = np.array([row["score"] for row in rows])
    assert roc_auc_score(wrong, -scores) >= 0.9


def test_the_rows_are_judged_by_scikit_learn(searched):
    _, issues = searched
    rows = in_file_order(issues)
    wrong = np.array([row["wrong"] for row in rows])
    flagged = np.array([row["flagged"] for row in rows])
    judged = issues.judged
    assert judged["wrong"] == int(wrong.sum()) and judged["rows"] == ROWS
    assert judged["flagged"]["precision"] == pytest.approx(100 * precision_score(wrong, flagged))
    assert judged["flagged"]["f1"] == pytest.approx(100 * f1_score(wrong, flagged))
    for name in DETECTORS:
        scores = np.array([row["score" if name == "self_confidence" else name] for row in rows])
        assert judged["detectors"][name]["auroc"] == pytest.approx(100 * roc_auc_score(wrong, -scores))


def test_the_row_tag_pairs_are_judged_on_cleanlabs_own_pair_scores(searched):
    _, issues = searched
    rows = in_file_order(issues)
    saved = np.load(issues.folder / PROBABILITIES_NPZ)
    given, probabilities = saved["labels"].astype(bool), saved["probabilities"]
    names = issues.class_names
    truth = np.array([[name in row["true_tags"] for name in names] for row in rows])
    wrong = (truth != given).ravel()
    lists = [np.flatnonzero(row).tolist() for row in given]
    quality = np.asarray(
        get_label_quality_scores_per_class(lists, probabilities, method="self_confidence")
    ).ravel()
    suspected = np.asarray(
        find_multilabel_issues_per_class(lists, probabilities, filter_by="prune_by_noise_rate", n_jobs=1)
    ).ravel()
    pairs = issues.judged["pairs"]
    assert pairs["wrong"] == int(wrong.sum()) > 0 and pairs["pairs"] == wrong.size
    assert pairs["auroc"] == pytest.approx(100 * roc_auc_score(wrong, -quality))
    assert pairs["auprc"] == pytest.approx(100 * average_precision_score(wrong, -quality))
    top = np.argsort(quality, kind="stable")[: int(wrong.sum())]
    assert pairs["precision_at_true_count"] == pytest.approx(100 * wrong[top].mean())
    assert pairs["suspected"]["count"] == int(suspected.sum())
    assert pairs["suspected"]["recall"] == pytest.approx(100 * recall_score(wrong, suspected))
    assert pairs["suspected"]["f1"] == pytest.approx(100 * f1_score(wrong, suspected))
    assert any(line.startswith("  (row, tag) pairs: ") for line in issues.lines())
