"""labelemb label-issues and labelemb.find_label_issues (issue 101): a CSV with labels flipped on
purpose, its dev split carved from train, searched by 3-fold cross-fitting. The flipped rows lead the
list; each listed row is the file's row of that number; each row's probabilities come from the fold
model that did not train on it; the scores, flags and estimates are cleanlab's own on the saved
probabilities; the judged figures are scikit-learn's; bad input is refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cleanlab.count import compute_confident_joint, estimate_latent, num_label_issues
from cleanlab.filter import find_label_issues as cleanlab_find
from cleanlab.rank import get_label_quality_scores
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

import labelemb
from labelemb.assembly import load_run_data
from labelemb.cli import main
from labelemb.label_issues import DETECTORS, LabelIssuesError, cross_fit
from labelemb.label_issues.folds import assign_folds, check_foldable, fold_dataset
from labelemb.label_issues.listing import LIST_CSV, PROBABILITIES_NPZ, SUMMARY_JSON
from labelemb.training import load_config

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {
    "animal": ["cat", "dog", "horse", "cow", "sheep", "goat"],
    "vehicle": ["car", "bus", "train", "bike", "truck", "tram"],
    "food": ["bread", "cheese", "apple", "rice", "soup", "pear"],
}
ROWS, FLIPS = 150, 8


def write_table(path: Path, count: int, seed: int, flips: int) -> list[dict[str, str]]:
    """A CSV (text, label, clean) of texts of :data:`WORDS`' classes in a shuffled order, ``flips``
    of its labels moved to the next class (``clean`` keeps the true one)."""
    generator = np.random.default_rng(seed)
    names = list(WORDS)
    rows = []
    for i in generator.permutation(count):
        label = names[int(i) % 3]
        rows.append({"text": " ".join(generator.choice(WORDS[label], 4)), "label": label, "clean": label})
    for i in generator.choice(count, flips, replace=False):
        rows[i]["label"] = names[(names.index(rows[i]["clean"]) + 1) % 3]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "clean"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def raw_config(folder: Path) -> dict[str, Any]:
    files = {"train": "train.csv", "test": "test.csv", "clean_label_column": "clean"}
    return {
        "experiment": "flips",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 4, "batch_size": 10, "lr": 0.05, "progress": False},
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The table, its search (3 folds), and what each fold trained on (its training rows' file rows)."""
    folder = tmp_path_factory.mktemp("flips")
    table = write_table(folder / "train.csv", ROWS, 0, FLIPS)
    write_table(folder / "test.csv", 30, 1, 0)
    trained_rows: list[set[int]] = []
    real_train = cross_fit.train

    def recording(run, *, dataset, progress):
        trained_rows.append(set(dataset.train.origins.rows.tolist()))
        return real_train(run, dataset=dataset, progress=progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cross_fit, "train", recording)
        issues = labelemb.find_label_issues(raw_config(folder), folds=3, progress=False)
    return folder, table, issues, trained_rows


def training_split(issues: Any) -> Any:
    """The data set as the search read it (its training split's order is the saved arrays')."""
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    return load_run_data(load_config(Path(summary["fold_runs"][0]) / "config.yaml"))


def by_position(issues: Any) -> list[dict[str, Any]]:
    """The listed rows in the training split's order (the saved arrays' order)."""
    listed = {row["row"]: row for row in issues.rows}
    return [listed[int(number)] for number in training_split(issues).train.origins.rows]


def test_the_flipped_rows_lead_and_each_row_is_its_files_row(searched):
    folder, table, issues, _ = searched
    assert repr(issues).startswith("LabelIssues(rows=")
    numbers = [row["row"] for row in issues.rows]
    # Every training row once, numbered in train.csv (dev, carved from it, holds the others).
    assert len(set(numbers)) == len(numbers) and numbers != sorted(numbers) and max(numbers) <= ROWS
    for row in issues.rows:
        assert Path(row["file"]).name == "train.csv"
        assert row["given_label"] == table[row["row"] - 1]["label"], row
        assert row["true_label"] == table[row["row"] - 1]["clean"], row
    flipped = {i + 1 for i, row in enumerate(table) if row["label"] != row["clean"]} & set(numbers)
    top = {row["row"] for row in issues.rows[: len(flipped)]}
    assert flipped and top == flipped
    # The CSV written is the list.
    with (issues.folder / LIST_CSV).open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [int(row["row"]) for row in written] == numbers
    assert "\n".join(issues.lines()).count("train.csv, row") == 10


def test_each_rows_probabilities_come_from_the_model_that_did_not_train_on_it(searched):
    _, _, issues, trained_rows = searched
    saved = np.load(issues.folder / PROBABILITIES_NPZ)
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    by_rank = {row["row"]: row for row in issues.rows}
    dataset = training_split(issues)
    assert len(trained_rows) == 3
    for k, run_dir in enumerate(summary["fold_runs"]):
        held = {row for row, listed in by_rank.items() if listed["fold"] == k + 1}
        assert held and not held & trained_rows[k]  # the fold's model never saw its rows
        assert held | trained_rows[k] == set(by_rank)
        # And the saved probabilities of its rows are that model's.
        predictor = labelemb.load(run_dir)
        fold_rows = np.flatnonzero(saved["fold"] == k)
        expected = predictor.predict_proba(fold_dataset(dataset, fold_rows).test)
        np.testing.assert_allclose(saved["probabilities"][fold_rows], expected, rtol=1e-6, atol=1e-9)


def test_the_scores_and_flags_are_cleanlabs_own(searched):
    _, _, issues, _ = searched
    saved = np.load(issues.folder / PROBABILITIES_NPZ)
    labels, probabilities = saved["labels"], saved["probabilities"]
    position = {row["row"]: i for i, row in enumerate(by_position(issues))}
    flagged = cleanlab_find(labels, probabilities, filter_by="prune_by_noise_rate")
    for name in DETECTORS:
        direct = get_label_quality_scores(labels, probabilities, method=name)
        listed = np.array([row["score" if name == "self_confidence" else name] for row in issues.rows])
        np.testing.assert_allclose(listed, direct[[position[row["row"]] for row in issues.rows]])
    assert [row["flagged"] for row in issues.rows] == [bool(flagged[position[r["row"]]]) for r in issues.rows]
    assert issues.flagged == int(flagged.sum()) > 0
    assert issues.estimated_wrong == num_label_issues(labels, probabilities)
    _, noise_matrix, _ = estimate_latent(compute_confident_joint(labels, probabilities), labels)
    np.testing.assert_allclose(issues.noise_matrix, noise_matrix.T)  # rows: the true class
    np.testing.assert_allclose(issues.noise_matrix.sum(axis=1), 1.0)


def test_the_judged_figures_are_scikit_learns(searched):
    _, _, issues, _ = searched
    rows = by_position(issues)
    wrong = np.array([row["wrong"] for row in rows])
    flagged = np.array([row["flagged"] for row in rows])
    judged = issues.judged
    assert judged["wrong"] == int(wrong.sum()) > 0
    assert judged["flagged"]["precision"] == pytest.approx(100 * precision_score(wrong, flagged))
    assert judged["flagged"]["recall"] == pytest.approx(100 * recall_score(wrong, flagged))
    assert judged["flagged"]["f1"] == pytest.approx(100 * f1_score(wrong, flagged))
    for name in DETECTORS:
        scores = np.array([row["score" if name == "self_confidence" else name] for row in rows])
        figures = judged["detectors"][name]
        assert figures["auroc"] == pytest.approx(100 * roc_auc_score(wrong, -scores))
        assert figures["auprc"] == pytest.approx(100 * average_precision_score(wrong, -scores))
        top = np.argsort(scores, kind="stable")[: int(wrong.sum())]
        assert figures["precision_at_true_count"] == pytest.approx(100 * wrong[top].mean())


def test_the_command_lists_the_same_rows(searched, capsys):
    folder, _, issues, _ = searched
    config = folder / "flips.yaml"
    config.write_text(json.dumps(raw_config(folder)), encoding="utf-8")  # JSON is YAML
    assert main(["label-issues", "--config", str(config), "--folds", "3", "--no-progress", "--top", "3"]) == 0
    out = capsys.readouterr().out
    first = issues.rows[0]
    assert f"1. flagged {first['file']}, row {first['row']}: given {first['given_label']!r}" in out


@pytest.mark.parametrize(
    ("labels", "folds", "words"),
    [
        ([0, 0, 0, 1, 1, 1, 2, 2], 3, "class 'c' has 2 training row(s), fewer than the 3 folds"),
        ([1, 1, 1, 1], 2, "one class only ('b')"),
        ([0, 1, 0, 1], 1, "at least 2 folds"),
    ],
)
def test_data_that_cannot_be_folded_is_refused_in_one_line(labels, folds, words):
    with pytest.raises(LabelIssuesError) as error:
        check_foldable(np.array(labels), ["a", "b", "c"], folds)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_more_folds_than_a_class_has_rows_and_sequence_data_are_refused_by_the_command(searched, capsys):
    folder, _, _, _ = searched
    config = folder / "flips.yaml"
    config.write_text(json.dumps(raw_config(folder)), encoding="utf-8")
    assert main(["label-issues", "--config", str(config), "--folds", "60", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "fewer than the 60 folds" in err and "--folds" in err
    pairs = {"format": "parallel", "train": ["a.en", "a.de"], "test": ["a.en", "a.de"]}
    with pytest.raises(LabelIssuesError, match="sequence-to-sequence"):
        labelemb.find_label_issues(
            {
                **raw_config(folder),
                "data": {"name": "files", "dir": str(folder), "files": pairs},
                "model": {"name": "seq2seq", "embedding": 8, "hidden": 8, "layers": 1},
            }
        )


def test_the_folds_are_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    fold = assign_folds(labels, 5, 3)
    assert np.array_equal(fold, assign_folds(labels, 5, 3)) and not np.array_equal(
        fold, assign_folds(labels, 5, 4)
    )
    for k in range(5):
        assert np.bincount(labels[fold == k]).tolist() == [2, 4, 6]


def test_the_rows_of_several_files_are_named_by_their_file(tmp_path):
    tables = {name: write_table(tmp_path / name, 45, seed, 3) for seed, name in enumerate(("a.csv", "b.csv"))}
    write_table(tmp_path / "test.csv", 15, 5, 0)
    raw = raw_config(tmp_path)
    raw["data"]["files"] = {"train": ["a.csv", "b.csv"], "test": "test.csv", "dev_fraction": 0.2}
    raw["train"]["epochs"] = 2
    issues = labelemb.find_label_issues(raw, folds=2, progress=False)
    named = {(Path(row["file"]).name, row["row"]) for row in issues.rows}
    assert len(named) == len(issues.rows) == 72 and {name for name, _ in named} == {"a.csv", "b.csv"}
    for row in issues.rows:
        assert row["given_label"] == tables[Path(row["file"]).name][row["row"] - 1]["label"], row


def test_a_run_config_is_taken_with_the_overrides_method_and_seed(small_config):
    from labelemb.label_issues.finding import _config

    config = small_config().model_copy(update={"source_folder": "/somewhere"})
    assert _config(config, [], {}, None, None, True) is config
    changed = _config(config, ["train.epochs=1"], {"train": {"lr": 0.01}}, "onehot", 3, False)
    assert (changed.train.epochs, changed.train.lr, changed.method.name, changed.seed) == (
        1,
        0.01,
        "onehot",
        3,
    )
    assert changed.source_folder == "/somewhere" and changed.train.progress is False


def test_a_figure_with_nothing_to_judge_is_written_as_json_null():
    # An AUROC where no label is wrong is NaN, which JSON has not: the files hold null instead.
    from labelemb.label_issues.listing import json_values

    summary = {"judged": {"auroc": float("nan"), "f1": 0.5, "per": [float("inf"), 1.0]}, "rows": 3}
    written = json.dumps(json_values(summary), allow_nan=False)
    assert json.loads(written) == {"judged": {"auroc": None, "f1": 0.5, "per": [None, 1.0]}, "rows": 3}


def test_top_takes_a_positive_count(capsys):
    from labelemb.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["label-issues", "--top", "-3"])
    assert stopped.value.code == 2 and "-3" in capsys.readouterr().err
