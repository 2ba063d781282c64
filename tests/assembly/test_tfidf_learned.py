"""model.name: tfidf with projection: learned (issue 100): each text's TF-IDF entries, a trained
projection of them (a sparse table stepped lazily), seeds side by side as one by one, and a run
that predicts new texts and exports as a bundle from its fitted TF-IDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.batched_checks import train_batched
from helpers.run_checks import Interrupted, read_metrics, untimed
from helpers.tfidf_runs import text_folder, tfidf_run
from sklearn.feature_extraction.text import TfidfVectorizer

import labelemb
from labelemb.assembly.tfidf import term_entries
from labelemb.config import ConfigError
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def texts(tmp_path, monkeypatch) -> Path:
    """train.csv and test.csv of three classes' words, and a fresh cache folder."""
    return text_folder(tmp_path, monkeypatch)


def learned_config(folder: Path, method: str = "onehot", seed: int = 0, **model):
    return tfidf_run(folder, "tfidf-learned", method, seed, {"width": 8, "max_terms": 16, **model})


def train_texts(folder: Path) -> list[str]:
    return [line.rsplit(",", 1)[0].strip('"') for line in (folder / "train.csv").read_text().splitlines()[1:]]


def test_seeds_side_by_side_learn_as_one_by_one(texts):
    # Without dropout: its masks are drawn per seed one by one and for all seeds at once stacked.
    batched = train_batched([learned_config(texts, "onehot", seed, dropout=0.0) for seed in (0, 1)])
    record = batched[0]["data"]["frozen"]
    assert record["entries"] == {"max_terms": 16, "seconds": pytest.approx(record["entries"]["seconds"])}
    assert "svd" not in record
    assert all(summary["selected_test_error"] < 50 for summary in batched)
    single = [
        train(learned_config(texts, "onehot", seed, dropout=0.0).model_copy(update={"experiment": "one"}))
        for seed in (0, 1)
    ]
    for stacked, own in zip(batched, single):
        assert stacked["selected_step"] == own["selected_step"]
        assert stacked["selected_test_error"] == pytest.approx(own["selected_test_error"], abs=1e-9)
        assert stacked["final_test_error"] == pytest.approx(own["final_test_error"], abs=1e-9)


def test_seeds_side_by_side_crashed_with_dropout_resume_to_the_uninterrupted_numbers(texts):
    # Dropout draws from the global random state, which the checkpoints must carry.
    def configs(out: str):
        seeds = [learned_config(texts, "onehot", seed) for seed in (0, 1)]
        every = {"eval_every": 4}
        return [
            c.model_copy(update={"output_dir": str(texts / out), "train": c.train.model_copy(update=every)})
            for c in seeds
        ]

    checks = []

    def crash(progress) -> None:
        checks.append(progress)
        if len(checks) == 2:
            raise Interrupted

    crashed = configs("crashed")
    with pytest.raises(Interrupted):
        train_batched(crashed, on_checkpoint=crash)
    train_batched(crashed)
    clean = configs("clean")
    train_batched(clean)
    for got, want in zip(crashed, clean):
        assert untimed(read_metrics(got.run_dir())) == untimed(read_metrics(want.run_dir()))


def test_the_entries_are_scikit_learns_tfidf(texts):
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    matrix = vectorizer.fit_transform(train_texts(texts)).astype(np.float32)
    entries = term_entries(matrix, max_terms=matrix.shape[1])
    dense = np.zeros(matrix.shape, dtype=np.float32)
    for row, text_entries in enumerate(entries.numpy()):
        real = text_entries[:, 0] < matrix.shape[1]
        dense[row, text_entries[real, 0].astype(int)] = text_entries[real, 1]
    np.testing.assert_allclose(dense, matrix.toarray())


def test_a_trained_run_predicts_new_texts_and_its_bundle_reads_no_data(texts, tmp_path, monkeypatch):
    import labelemb.assembly.frozen as frozen
    from labelemb.predict.export import export

    config = learned_config(texts, "label_embedding")
    summary = train(config)
    predictor = labelemb.load(config.run_dir())
    rows = [line.rsplit(",", 1) for line in (texts / "test.csv").read_text().splitlines()[1:]]
    new_texts = [text.strip('"') for text, _ in rows]
    probabilities = predictor.predict_proba(new_texts)
    predicted = [predictor.classes[i] for i in probabilities.argmax(1).tolist()]
    wrong = sum(p != label for p, (_, label) in zip(predicted, rows))
    assert 100.0 * wrong / len(rows) == pytest.approx(summary["selected_test_error"])

    export(predictor, "bundle", tmp_path / "bundle")

    def no_data(*args, **kwargs):
        raise AssertionError("loading a bundle read its run's data")

    monkeypatch.setattr(frozen, "load_run_data", no_data)
    monkeypatch.setattr(frozen, "fitted_tfidf", no_data)
    for name in ("train.csv", "test.csv"):
        (texts / name).unlink()
    np.testing.assert_allclose(
        labelemb.load(tmp_path / "bundle").predict_proba(new_texts), probabilities, rtol=1e-6
    )


def test_config_mistakes_are_one_line(texts):
    with pytest.raises(ConfigError, match="projection"):
        learned_config(texts, projection="pca")
    with pytest.raises(ConfigError, match="leave train.clip_grad_norm unset"):
        build_config({**learned_config(texts).model_dump(mode="json"), "train": {"clip_grad_norm": 1.0}})
    with pytest.raises((ConfigError, ValueError), match="model.width"):
        train(learned_config(texts, dense=16))
