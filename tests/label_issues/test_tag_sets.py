"""labelemb label-issues on tag sets (issue 101): a CSV of tagged texts with one tag removed from
10 % of its rows on purpose (the truth kept), searched by 3-fold cross-fitting. Those rows lead the
list (AUROC over rows, scikit-learn's) and their removed tag is the one suspected missing; each row
is the file's row of that number with its file's tags; each row's probabilities come from the fold
model that did not train on it; the scores, flags, suspected pairs and estimate are cleanlab's own
multi-label functions on the saved probabilities; the page shows the texts with their tags; bad
input is refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cleanlab.count import num_label_issues
from cleanlab.multilabel_classification.filter import find_label_issues, find_multilabel_issues_per_class
from cleanlab.multilabel_classification.rank import (
    get_label_quality_scores,
    get_label_quality_scores_per_class,
)
from sklearn.metrics import roc_auc_score

import labelemb
from labelemb.analysis.report_noise import LABEL_ISSUES_PAGE
from labelemb.cli import main
from labelemb.label_issues import DETECTORS, LabelIssuesError, cross_fit
from labelemb.label_issues.folds import assign_folds, check_tags_foldable
from labelemb.label_issues.listing import LIST_CSV, LIST_JSONL, PROBABILITIES_NPZ, SUMMARY_JSON, TAG_COLUMNS

pytestmark = pytest.mark.usefixtures("one_thread")

TAG_WORDS = {
    "audio": ["sound", "music", "mixer"],
    "games": ["game", "player", "level"],
    "net": ["network", "http", "socket"],
    "python": ["python", "pip", "module"],
}
FILLER = ["the", "a", "package", "for", "with", "and", "tool"]
ROWS, REMOVED = 200, 20  # one tag removed from 10 % of the training rows


def tagged_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` texts, each carrying two or three tags, two of each tag's own words among filler."""
    rng = np.random.default_rng(seed)
    names = list(TAG_WORDS)
    rows = []
    for _ in range(count):
        carried = sorted(rng.choice(names, int(rng.integers(2, 4)), replace=False).tolist())
        words = [str(rng.choice(TAG_WORDS[tag])) for tag in carried for _ in range(2)]
        words += [str(rng.choice(FILLER)) for _ in range(int(rng.integers(1, 4)))]
        rows.append({"text": " ".join(rng.permutation(words)), "tags": carried, "true": list(carried)})
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "tags"])
        writer.writerows([row["text"], " ".join(row["tags"])] for row in rows)


def write_data(folder: Path) -> list[dict[str, Any]]:
    """train.csv (one tag removed from :data:`REMOVED` rows, ``true`` keeps them), dev.csv, test.csv."""
    table = tagged_rows(ROWS, 0)
    rng = np.random.default_rng(7)
    for i in rng.choice(ROWS, REMOVED, replace=False):
        lost = rng.choice(table[i]["tags"])
        table[i]["tags"] = [tag for tag in table[i]["tags"] if tag != lost]
    write_rows(folder / "train.csv", table)
    write_rows(folder / "dev.csv", tagged_rows(60, 1))
    write_rows(folder / "test.csv", tagged_rows(40, 2))
    return table


def raw_config(folder: Path) -> dict[str, Any]:
    files = {
        "format": "csv",
        "train": "train.csv",
        "dev": "dev.csv",
        "test": "test.csv",
        "tags_column": "tags",
    }
    return {
        "experiment": "tags",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 16, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 8, "batch_size": 10, "lr": 0.05, "progress": False},
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The table, its search (3 folds) and what each fold trained on (its training rows' file rows)."""
    folder = tmp_path_factory.mktemp("tags")
    table = write_data(folder)
    trained_rows: list[set[int]] = []
    real_train = cross_fit.train

    def recording(run, *, dataset, progress):
        trained_rows.append(set(dataset.train.origins.rows.tolist()))
        return real_train(run, dataset=dataset, progress=progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cross_fit, "train", recording)
        issues = labelemb.find_label_issues(raw_config(folder), folds=3, progress=False)
    return folder, table, issues, trained_rows


def saved(issues: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The saved probabilities (N, K), tag sets (N, K) and folds, in the training split's order."""
    arrays = np.load(issues.folder / PROBABILITIES_NPZ)
    return arrays["probabilities"], arrays["labels"], arrays["fold"]


def test_the_rows_with_a_removed_tag_lead_and_their_tag_is_suspected_missing(searched):
    _, table, issues, _ = searched
    removed = np.array(
        [table[row["row"] - 1]["tags"] != table[row["row"] - 1]["true"] for row in issues.rows]
    )
    assert removed.sum() == REMOVED
    scores = np.array([row["score"] for row in issues.rows])
    assert roc_auc_score(removed, -scores) >= 0.95
    assert removed[:REMOVED].mean() >= 0.8
    found = 0
    for row in issues.rows[:REMOVED]:
        lost = set(table[row["row"] - 1]["true"]) - set(table[row["row"] - 1]["tags"])
        found += bool(lost) and lost <= set(row["suspected_missing"])
        assert not set(row["suspected_missing"]) & set(row["given_tags"])
        assert set(row["suspected_wrong"]) <= set(row["given_tags"])
    assert found >= 0.8 * REMOVED
    assert "likely missing [" in "\n".join(issues.lines())


def test_each_row_is_its_files_row_with_its_files_tags(searched):
    _, table, issues, _ = searched
    assert issues.tag_sets and repr(issues).startswith("LabelIssues(rows=")
    numbers = [row["row"] for row in issues.rows]
    assert sorted(numbers) == list(range(1, ROWS + 1))
    for row in issues.rows:
        assert Path(row["file"]).name == "train.csv"
        assert row["given_tags"] == table[row["row"] - 1]["tags"], row
    others = [name for name in DETECTORS if name != "self_confidence"]
    assert [key for key in issues.rows[0] if key not in others] == list(TAG_COLUMNS)
    with (issues.folder / LIST_CSV).open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [int(row["row"]) for row in written] == numbers
    assert [row["given_tags"].split() for row in written] == [row["given_tags"] for row in issues.rows]
    lines = (issues.folder / LIST_JSONL).read_text().splitlines()
    assert [json.loads(line)["suspected_missing"] for line in lines] == [
        r["suspected_missing"] for r in issues.rows
    ]


def test_each_rows_probabilities_come_from_the_model_that_did_not_train_on_it(searched):
    _, _, issues, trained_rows = searched
    assert len(trained_rows) == 3
    held = {k + 1: {row["row"] for row in issues.rows if row["fold"] == k + 1} for k in range(3)}
    assert set().union(*held.values()) == set(range(1, ROWS + 1))
    for k, rows in enumerate(trained_rows, start=1):
        assert not rows & held[k] and len(rows) + len(held[k]) == ROWS
    probabilities, tags, _ = saved(issues)
    assert probabilities.shape == tags.shape == (ROWS, len(TAG_WORDS)) and tags.dtype == bool
    assert ((probabilities > 0) & (probabilities < 1)).all()  # each tag's own sigmoid, not a softmax
    assert not np.allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # cleanlab's count, inside
def test_the_scores_flags_and_suspected_tags_are_cleanlabs_own(searched):
    _, _, issues, _ = searched
    probabilities, tags, _ = saved(issues)
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    names = summary["class_names"]
    labels = [np.flatnonzero(row).tolist() for row in tags]
    order = np.argsort(
        get_label_quality_scores(labels, probabilities, method="self_confidence"), kind="stable"
    )
    # The list's i-th row is the training split's order[i]: its given tags say so.
    assert [row["given_tags"] for row in issues.rows] == [[names[k] for k in labels[i]] for i in order]
    for name in DETECTORS:
        expected = get_label_quality_scores(labels, probabilities, method=name)[order]
        listed = [row["score" if name == "self_confidence" else name] for row in issues.rows]
        assert np.allclose(listed, expected)
    flagged = find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    assert [row["flagged"] for row in issues.rows] == flagged[order].tolist()
    assert issues.flagged == summary["flagged"] == int(flagged.sum()) > 0
    pairs = find_multilabel_issues_per_class(labels, probabilities, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores_per_class(labels, probabilities, method="self_confidence")
    for row, i in zip(issues.rows, order):
        doubt = [names[k] for k in np.argsort(quality[i], kind="stable") if pairs[i, k]]
        assert row["suspected_wrong"] == [tag for tag in doubt if tags[i, names.index(tag)]]
        assert row["suspected_missing"] == [tag for tag in doubt if not tags[i, names.index(tag)]]
    assert issues.estimated_wrong == num_label_issues(labels, probabilities, multi_label=True)
    assert set(summary["tag_noise"]) == set(names) and summary["suspected_pairs"] == int(pairs.sum())


def test_the_page_shows_the_texts_with_their_given_and_suspected_tags(searched):
    folder, table, issues, _ = searched
    page = (issues.folder / LABEL_ISSUES_PAGE).read_text(encoding="utf-8")
    first = next(row for row in issues.rows if row["flagged"])
    assert table[first["row"] - 1]["text"] in page
    assert "likely missing" in page and "The estimated noise of each tag" in page
    flagged_section = page.split('<section id="flagged">')[1]
    assert flagged_section.count("<tr>") - 1 == issues.flagged  # every flagged row, less the header
    assert all(
        f"<td>{' '.join(row['given_tags'])}</td>" in flagged_section for row in issues.rows if row["flagged"]
    )


def test_the_command_lists_the_same_rows(searched, capsys):
    folder, _, issues, _ = searched
    config = folder / "tags.yaml"
    config.write_text(json.dumps(raw_config(folder)), encoding="utf-8")
    assert main(["label-issues", "--config", str(config), "--folds", "3", "--no-progress", "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("train.csv, row") == 4 and f"row {issues.rows[0]['row']}:" in out


def test_tag_folds_are_seeded_kfold():
    tags = np.random.default_rng(0).random((50, 3)) < 0.5
    fold = assign_folds(tags, 5, 3)
    assert np.array_equal(fold, assign_folds(tags, 5, 3)) and not np.array_equal(
        fold, assign_folds(tags, 5, 4)
    )
    assert np.bincount(fold).tolist() == [10] * 5


@pytest.mark.parametrize(
    ("tags", "names", "folds", "words"),
    [
        ([[1, 0], [1, 0], [1, 0]], ["a", "b"], 2, "tag 'b' is carried by no training row"),
        ([[1], [1], [0]], ["a"], 2, "one tag only ('a')"),
        ([[1, 0], [0, 1]], ["a", "b"], 3, "2 training row(s) for 3 folds"),
        ([[1, 0], [0, 1]], ["a", "b"], 1, "at least 2 folds"),
    ],
)
def test_tag_sets_that_cannot_be_searched_are_refused_in_one_line(tags, names, folds, words):
    with pytest.raises(LabelIssuesError) as error:
        check_tags_foldable(np.array(tags, dtype=bool), names, folds)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_a_tag_no_training_row_carries_and_dynamics_are_refused_before_training(tmp_path):
    write_rows(tmp_path / "train.csv", tagged_rows(30, 0))
    write_rows(tmp_path / "dev.csv", tagged_rows(10, 1))
    write_rows(tmp_path / "test.csv", tagged_rows(10, 2))
    raw = raw_config(tmp_path)
    raw["data"]["files"]["class_names"] = [*TAG_WORDS, "video"]  # a tag named, never given
    with pytest.raises(LabelIssuesError, match="tag 'video' is carried by no training row") as error:
        labelemb.find_label_issues(raw, folds=2, progress=False)
    assert "\n" not in str(error.value)
    with pytest.raises(LabelIssuesError, match="drop --dynamics for tag sets"):
        labelemb.find_label_issues(raw_config(tmp_path), folds=2, dynamics=True, progress=False)
    assert not (tmp_path / "runs").exists()
