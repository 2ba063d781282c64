"""The linear reference of a text comparison (issue 100): a linear SVM and logistic regression on
TF-IDF, fitted by scikit-learn on the splits the runs read, judged by the runs' figures."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.tagged_texts import TAG_WORDS, write_tagged_splits
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, log_loss
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

import labelemb
from labelemb.analysis.reference_table import REFERENCE_FILE, read_reference
from labelemb.analysis.report import build_report
from labelemb.assembly import load_run_data
from labelemb.cli import main
from labelemb.config import build_config
from labelemb.data import DataRequest, load
from labelemb.data.files.options import FilesOptions
from labelemb.data.text.options import TextOptions
from labelemb.evaluation import linear_reference as linear_reference_module
from labelemb.evaluation.linear_models import MODELS, ReferenceError
from labelemb.evaluation.linear_reference import comparison_reference, linear_reference

SVM_GRID, LOGREG_GRID = (model.grid for model in MODELS)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The TF-IDF cache of each test in its own folder."""
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))


#: Each class's own words: a linear model on TF-IDF tells them apart.
WORDS = {
    "food": ["bread", "soup", "pasta", "rice", "bake"],
    "music": ["band", "song", "piano", "album", "singer"],
    "sport": ["team", "goal", "match", "coach", "player"],
}


def write_texts(path, rows: int, seed: int, column: str | None = None, flip: float = 0.0) -> None:
    """A CSV (text, label) of ``rows`` texts: one word of their class, one of any class's (so that
    a linear model errs on some) and three shared ones. With ``column``, the true label is there and
    ``label`` another class for a share ``flip`` of the rows."""
    rng = np.random.default_rng(seed)
    names = sorted(WORDS)
    lines = ["text,label" + (f",{column}" if column else "")]
    for i in range(rows):
        label = names[i % len(names)]
        other = WORDS[names[int(rng.integers(len(names)))]]
        words = [rng.choice(WORDS[label]), rng.choice(other), *rng.choice(["the", "a", "new", "and"], 3)]
        given = names[(i + 1) % len(names)] if column and rng.random() < flip else label
        lines.append(f"{' '.join(rng.permutation(words))} {i},{given}" + (f",{label}" if column else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_text_data_set_keeps_each_splits_texts_whole_and_in_its_order(tmp_path):
    write_texts(tmp_path / "train.csv", 60, 0)
    write_texts(tmp_path / "test.csv", 12, 1)
    files = FilesOptions(format="csv", train="train.csv", test="test.csv", dev_fraction=0.2)
    text = TextOptions(tokenizer="words", max_text_tokens=2)
    request = DataRequest(dir=str(tmp_path), sections={"files": files, "text": text}, progress=False)
    dataset = load("files", request)
    # dev was carved from train; every split's texts line up with its labels, whole though the
    # model reads the first two tokens only.
    counts = {split: len(texts) for split, texts in dataset.texts.items()}
    assert counts == {"train": 48, "dev": 12, "test": 12}
    for split in ("train", "dev", "test"):
        labels = getattr(dataset, split).labels.tolist()
        for text, label in zip(dataset.texts[split], labels):
            assert any(word in text.split() for word in WORDS[dataset.class_names[label]])
            assert len(text.split()) == 6


# ---------------------------------------------------------------- the reference's figures


def write_splits(folder: Path, rows: dict[str, int] | None = None) -> Path:
    """train.csv, dev.csv and test.csv of :func:`write_texts` in ``folder``."""
    for seed, (split, count) in enumerate((rows or {"train": 60, "dev": 60, "test": 60}).items()):
        write_texts(folder / f"{split}.csv", count, seed)
    return folder


def text_config(folder: Path, **files: Any) -> Any:
    """A bag-of-words run on the CSVs in ``folder`` (the reference reads the same splits)."""
    split_files = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv", **files}
    raw = {
        "experiment": "texts",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": {"format": "csv", **split_files}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 16, "progress": False},
    }
    return build_config(raw)


def read_rows(path: Path, names: list[str], column: str = "label") -> tuple[list[str], np.ndarray]:
    """A CSV's texts and the class ids of its ``column`` (by ``names``), read with the csv module."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], np.array([names.index(row[column]) for row in rows])


def expected_ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """The ECE (percent) over equal-width bins (b/bins, (b+1)/bins] of the top probability."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    gaps = [
        abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).sum()
        for b in range(bins)
        if (which == b).any()
    ]
    return 100.0 * sum(gaps) / len(labels)


def direct_fit(
    make: Any, grid: tuple[float, ...], splits: dict[str, tuple[Any, np.ndarray]]
) -> tuple[float, Any]:
    """The C of ``grid`` with the lowest dev error of ``make(C)`` fitted on train, and that fit."""
    fits = [(c, make(c).fit(*splits["train"])) for c in grid]
    errors = [np.mean(fit.predict(splits["dev"][0]) != splits["dev"][1]) for _, fit in fits]
    return fits[int(np.argmin(errors))]


def direct_path(
    estimator: Any, grid: tuple[float, ...], splits: dict[str, tuple[Any, np.ndarray]]
) -> tuple[float, np.ndarray]:
    """``estimator`` refitted at each C of ``grid`` in turn (a warm start carries its weights up the
    grid): the C of the lowest dev error and the test probabilities of its fit."""
    fits = []
    for c in grid:
        estimator.set_params(C=c).fit(*splits["train"])
        error = np.mean(estimator.predict(splits["dev"][0]) != splits["dev"][1])
        fits.append((error, c, estimator.predict_proba(splits["test"][0])))
    _, c, probabilities = min(fits, key=lambda fit: fit[0])  # the first of equals
    return c, probabilities


def test_the_reference_figures_are_scikit_learns_called_directly(tmp_path):
    config = text_config(write_splits(tmp_path))
    record = linear_reference(config, tmp_path / "experiment")
    names = sorted(WORDS)
    raw = {split: read_rows(tmp_path / f"{split}.csv", names) for split in ("train", "dev", "test")}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    vectorizer.fit(raw["train"][0])
    splits = {split: (vectorizer.transform(texts), labels) for split, (texts, labels) in raw.items()}
    assert record["terms"] == len(vectorizer.vocabulary_)
    rows = {row["model"]: row for row in record["rows"]}
    assert set(rows) == {"svm", "logreg"} and {row["labels"] for row in rows.values()} == {"trained"}
    for row, grid in ((rows["svm"], SVM_GRID), (rows["logreg"], LOGREG_GRID)):
        # the seconds of each fit, within the seconds of the whole grid (scoring included)
        assert list(row["fit_seconds"]) == [f"{c:g}" for c in grid] == list(row["dev"])
        assert all(seconds > 0 for seconds in row["fit_seconds"].values())
        assert sum(row["fit_seconds"].values()) <= row["seconds"]
    test_x, test_y = splits["test"]

    svm_c, svm = direct_fit(lambda c: LinearSVC(C=c), SVM_GRID, splits)
    predicted = svm.predict(test_x)
    assert rows["svm"]["C"] == svm_c != SVM_GRID[0]  # chosen on dev: not the first C of the grid here
    assert rows["svm"]["figures"] == pytest.approx(
        {
            "test_error": 100 * np.mean(predicted != test_y),
            "test_macro_f1": 100 * f1_score(test_y, predicted, average="macro"),
        }
    )
    # Logistic regression by sag, each C of the rising grid refitted from the last one's weights.
    path = LogisticRegression(solver="sag", max_iter=300, warm_start=True, random_state=0)
    lr_c, probabilities = direct_path(path, LOGREG_GRID, splits)
    assert rows["logreg"]["C"] == lr_c != LOGREG_GRID[0]
    assert rows["logreg"]["figures"] == pytest.approx(
        {
            "test_error": 100 * np.mean(probabilities.argmax(1) != test_y),
            "test_macro_f1": 100 * f1_score(test_y, probabilities.argmax(1), average="macro"),
            "test_ece": expected_ece(probabilities, test_y),
            "test_nll": log_loss(test_y, probabilities, labels=[0, 1, 2]),
        },
        abs=1e-3,  # the reference reads the cached TF-IDF in float32, this one is float64
    )


def first_best(values: list[float]) -> int:
    """The position of the first largest of ``values``."""
    return int(np.argmax(values))


def test_a_tag_sets_reference_is_one_vs_rest_judged_by_the_tag_figures(tmp_path):
    write_tagged_splits(tmp_path)
    config = text_config(tmp_path, tags_column="tags")
    record = linear_reference(config, tmp_path / "experiment")
    names = sorted(TAG_WORDS)
    raw = {}
    for split in ("train", "dev", "test"):
        with (tmp_path / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        tags = np.array([[name in row["tags"].split() for name in names] for row in rows])
        raw[split] = ([row["text"] for row in rows], tags)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit(raw["train"][0])
    (train_x, train_y), (dev_x, dev_y), (test_x, test_y) = (
        (vectorizer.transform(texts), tags) for texts, tags in raw.values()
    )

    def macro_map(tags: np.ndarray, scores: np.ndarray) -> float:
        carried = tags.any(0)
        return 100 * average_precision_score(tags[:, carried], scores[:, carried], average="macro")

    rows = {row["model"]: row for row in record["rows"]}
    for key, make, grid in (
        ("svm", lambda c: LinearSVC(C=c), SVM_GRID),
        ("logreg", lambda c: LogisticRegression(C=c, solver="liblinear"), LOGREG_GRID),
    ):
        fits = [OneVsRestClassifier(make(c)).fit(train_x, train_y) for c in grid]
        chosen = first_best([macro_map(dev_y, fit.decision_function(dev_x)) for fit in fits])
        fit = fits[chosen]
        dev_p, test_p = (1 / (1 + np.exp(-fit.decision_function(x))) for x in (dev_x, test_x))
        thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
        threshold = thresholds[first_best([f1_score(dev_y, dev_p >= t, average="micro") for t in thresholds])]
        want = {
            "test_map_macro": macro_map(test_y, test_p),
            "test_f1_micro": 100 * f1_score(test_y, test_p >= threshold, average="micro"),
            "tag_threshold": threshold,
        }
        assert rows[key]["C"] == grid[chosen]
        assert {name: rows[key]["figures"][name] for name in want} == pytest.approx(want)
    # A margin is no probability: the SVM's tags have no calibration, logistic regression's have.
    assert "test_tag_ece" in rows["logreg"]["figures"] and "test_tag_ece" not in rows["svm"]["figures"]


def test_on_noisy_labels_it_trains_on_them_and_on_the_clean_ones_judged_on_the_clean_test(tmp_path):
    for split, count, seed in (("train", 90, 0), ("test", 60, 2)):
        write_texts(tmp_path / f"{split}.csv", count, seed, column="clean", flip=0.4)
    config = text_config(tmp_path, dev=None, clean_label_column="clean", dev_fraction=0.25)
    record = linear_reference(config, tmp_path / "experiment")
    assert record["noisy"] is True
    rows = {(row["model"], row["labels"]): row for row in record["rows"]}
    assert set(rows) == {(m, labels) for m in ("svm", "logreg") for labels in ("trained", "clean")}
    dataset = load_run_data(config)
    texts = dataset.texts
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit(texts["train"])
    test_x = vectorizer.transform(texts["test"])
    # The test split is judged on its clean labels, whichever labels trained the model.
    _, clean_test = read_rows(tmp_path / "test.csv", sorted(WORDS), column="clean")
    assert dataset.test.labels.tolist() == clean_test.tolist()
    for labels, train_y, dev_y in (
        ("trained", dataset.train.labels.numpy(), dataset.dev.labels.numpy()),
        ("clean", dataset.noise.clean["train"].numpy(), dataset.noise.clean["dev"].numpy()),
    ):
        splits = {
            "train": (vectorizer.transform(texts["train"]), train_y),
            "dev": (vectorizer.transform(texts["dev"]), dev_y),
        }
        c, svm = direct_fit(lambda c: LinearSVC(C=c), SVM_GRID, splits)
        assert rows["svm", labels]["C"] == c
        error = 100 * np.mean(svm.predict(test_x) != clean_test)
        assert rows["svm", labels]["figures"]["test_error"] == pytest.approx(error)
    noisy_train = dataset.train.labels != dataset.noise.clean["train"]
    assert 0 < int(noisy_train.sum()) < len(noisy_train)  # the two fits read different labels


# ---------------------------------------------------------------- the record kept


def fits(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a record's rows found (their seconds aside)."""
    return [(row["model"], row["labels"], row["C"], row["figures"]) for row in record["rows"]]


def no_fit(*args: Any) -> Any:
    raise AssertionError("the reference was fitted again")


def test_a_second_comparison_reads_the_record_and_a_change_fits_anew(tmp_path, monkeypatch, caplog):
    config = text_config(write_splits(tmp_path))
    experiment = tmp_path / "experiment"
    first = linear_reference(config, experiment)
    with monkeypatch.context() as patched:
        patched.setattr(linear_reference_module, "tfidf_features", no_fit)
        assert linear_reference(config, experiment) == first
    path = experiment / REFERENCE_FILE
    # Each of these is fitted anew: other test texts, a damaged record, a record with no rows.
    write_texts(tmp_path / "test.csv", 60, seed=7)
    changed = linear_reference(config, experiment)
    assert changed["key"] != first["key"] and fits(changed) != fits(first)
    path.write_text('{"format": 1, "key": ', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=linear_reference_module.__name__):
        assert fits(linear_reference(config, experiment)) == fits(changed)
    assert "cannot be read" in caplog.text
    record = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**record, "rows": None}), encoding="utf-8")
    again = linear_reference(config, experiment)
    assert fits(again) == fits(changed)
    # A record that fits is read, whatever it holds: the one written last is this data's.
    with monkeypatch.context() as patched:
        patched.setattr(linear_reference_module, "tfidf_features", no_fit)
        assert linear_reference(config, experiment) == again
        assert read_reference(experiment).rows[0].figures == changed["rows"][0]["figures"]


def test_a_change_to_the_code_that_fits_it_fits_anew_and_any_other_change_does_not(tmp_path, monkeypatch):
    config = text_config(write_splits(tmp_path))
    experiment = tmp_path / "experiment"
    first = linear_reference(config, experiment)
    # Another commit of labelemb that leaves the two modules as they are: the record is read.
    with monkeypatch.context() as patched:
        patched.setattr(linear_reference_module, "code_version", lambda: "0.0.1+gother")
        patched.setattr(linear_reference_module, "tfidf_features", no_fit)
        assert linear_reference(config, experiment) == first
    # The digest is of the two modules' text: it changes with them and nothing else.
    digest = linear_reference_module.source_digest()
    sources = [Path(linear_reference_module.linear_models.__file__), Path(linear_reference_module.__file__)]
    text = b"".join(f"{source.name}\n".encode() + source.read_bytes() for source in sources)
    assert digest == hashlib.sha256(text).hexdigest()
    # Another text of those modules: fitted anew, under another key, recording the code it ran.
    monkeypatch.setattr(linear_reference_module, "source_digest", lambda: "0" * 64)
    monkeypatch.setattr(linear_reference_module, "code_version", lambda: "0.0.1+gother")
    refitted = linear_reference(config, experiment)
    assert refitted["key"] != first["key"] and refitted["labelemb"] == "0.0.1+gother"
    assert json.loads((experiment / REFERENCE_FILE).read_text(encoding="utf-8")) == refitted


def test_a_vocabulary_that_comes_out_empty_is_one_line_and_the_comparison_goes_on(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.csv").write_text("text,label\na,x\nb,y\nc,x\nd,y\n", encoding="utf-8")
    config = text_config(tmp_path)
    with pytest.raises(
        ReferenceError, match=r"TF-IDF of the training texts has no term.*in at least 2 texts"
    ):
        linear_reference(config, tmp_path / "experiment")
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / REFERENCE_FILE).write_text("{}", encoding="utf-8")  # of earlier data
    line = comparison_reference(tmp_path / "experiment", config)
    assert line.startswith("no linear reference: TF-IDF of the training texts has no term")
    assert "\n" not in line and not (tmp_path / "experiment" / REFERENCE_FILE).exists()


def test_turned_off_or_on_images_there_is_no_reference(tmp_path, small_config):
    config = text_config(write_splits(tmp_path))
    experiment = tmp_path / "experiment"
    assert comparison_reference(experiment, config) is None
    assert read_reference(experiment) is not None
    assert comparison_reference(experiment, config, enabled=False) is None
    assert read_reference(experiment) is None and not (experiment / REFERENCE_FILE).exists()
    assert linear_reference(small_config(), experiment) is None  # the digits: images


# ---------------------------------------------------------------- a comparison shows it


def test_a_tiny_text_comparison_shows_the_reference_in_its_tables_ranks_and_report(tmp_path, capsys):
    folder = write_splits(tmp_path)
    config = text_config(folder).model_dump(mode="json", exclude={"source_folder"})
    comparison = labelemb.compare(config, methods=["onehot", "label_smoothing"], seeds=[0], progress=False)
    experiment = folder / "runs" / "texts"
    record = json.loads((experiment / REFERENCE_FILE).read_text(encoding="utf-8"))
    svm = next(row for row in record["rows"] if row["model"] == "svm")
    label, error = "linear SVM (TF-IDF, reference)", f"{svm['figures']['test_error']:.2f}"
    assert comparison.reference.rows[0].label == label
    for text in (comparison.short, comparison.markdown, (experiment / "comparison.md").read_text()):
        line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        assert f"| {error} |" in line
        assert "(TF-IDF, reference): not a method but scikit-learn's linear SVM" in text
        assert "logistic regression (TF-IDF, reference)" in text
    csv_rows = list(csv.DictReader((experiment / "comparison.csv").open(encoding="utf-8")))
    assert [row["method"] for row in csv_rows][2:] == [label, "logistic regression (TF-IDF, reference)"]
    assert float(csv_rows[2]["selected_mean"]) == pytest.approx(svm["figures"]["test_error"])
    assert main(["ranks", str(experiment), "--output", str(tmp_path / "ranks.png")]) == 0
    assert f"| {label} | {error} |" in capsys.readouterr().out
    page = build_report(experiment, tmp_path / "report.html").read_text(encoding="utf-8")
    assert label in page and "not a method but scikit-learn" in page
    # --no-reference: no rows, and no record left for ranks or the report to show.
    assert main(["compare", "--summarize", str(experiment), "--no-reference"]) == 0
    assert label not in capsys.readouterr().out and label not in (experiment / "comparison.md").read_text()
    assert not (experiment / REFERENCE_FILE).exists()


def test_a_kept_reference_stays_when_its_data_cannot_be_read_here(tmp_path):
    # Records restored on another machine: the data is gone, the reference fitted on it is kept
    # (as the runs' figures are) and the line says it went unchecked.
    (tmp_path / "data").mkdir()
    folder = write_splits(tmp_path / "data")
    config = text_config(folder)
    experiment = tmp_path / "experiment"
    assert comparison_reference(experiment, config) is None
    kept = (experiment / REFERENCE_FILE).read_text(encoding="utf-8")
    for split in ("train", "dev", "test"):
        (folder / f"{split}.csv").unlink()
    line = comparison_reference(experiment, config)
    assert line.startswith("linear reference as kept, not checked against the data") and "\n" not in line
    assert (experiment / REFERENCE_FILE).read_text(encoding="utf-8") == kept
