"""model.name: tfidf (issue 100): TF-IDF of the raw texts through a truncated SVD, computed once per
data set and cached, a head trained on it for every method and seed (side by side), a trained run
that predicts new texts from its fitted representation kept as data; config mistakes are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.batched_checks import train_batched
from helpers.tfidf_runs import text_folder, tfidf_run
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

import labelemb
from labelemb.assembly.frozen import frozen_backbone
from labelemb.assembly.tfidf import TfidfFeatures
from labelemb.config import ConfigError
from labelemb.data import Split
from labelemb.predict.raw_texts import raw_text_features
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def texts(tmp_path, monkeypatch) -> Path:
    """train.csv and test.csv of three classes' words, and a fresh cache folder."""
    return text_folder(tmp_path, monkeypatch)


def tfidf_config(folder: Path, method: str = "onehot", seed: int = 0, **model):
    return tfidf_run(folder, "tfidf", method, seed, {"projection": "svd", "components": 6, **model})


def frozen_record(summary):
    return summary["data"]["frozen"]


def test_methods_and_seeds_train_side_by_side_on_features_computed_once(texts):
    first = train_batched([tfidf_config(texts, "onehot", seed) for seed in (0, 1)])
    record = frozen_record(first[0])
    assert record["backbone"] == "tfidf" and record["features"] == 6
    assert not record["tfidf"]["reused"] and not record["svd"]["reused"]
    assert all(summary["selected_test_error"] < 50 for summary in first)
    # Another method on the same data reads every cache: nothing is fitted or computed again.
    again = train_batched([tfidf_config(texts, "label_smoothing", seed) for seed in (0, 1)])
    record = frozen_record(again[0])
    assert record["tfidf"]["reused"] and record["svd"]["reused"]
    assert {split["reused"] for split in record["splits"].values()} == {True}


def test_a_changed_option_makes_new_features(texts):
    train(tfidf_config(texts))
    changed = train(tfidf_config(texts, seed=1, vectorizer={"min_df": 1, "binary": True}))
    assert not frozen_record(changed)["tfidf"]["reused"]
    wider = train(tfidf_config(texts, seed=2, components=4))
    record = frozen_record(wider)
    assert record["tfidf"]["reused"] and not record["svd"]["reused"] and record["features"] == 4


def test_the_features_are_scikit_learns_tfidf_through_its_svd(texts):
    config = tfidf_config(texts)
    train(config)
    module = frozen_backbone(config, None)
    assert isinstance(module, TfidfFeatures)
    rows = [line.rsplit(",", 1)[0].strip('"') for line in (texts / "train.csv").read_text().splitlines()[1:]]
    # The run's dev split is carved from train: fit the direct pipeline on the rows the run trained on.
    dataset = labelemb.assembly.load_run_data(config)
    train_texts = dataset.texts["train"]
    assert set(train_texts) <= set(rows)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit(train_texts)
    svd = TruncatedSVD(6, algorithm="randomized", n_iter=2, random_state=0).fit(
        vectorizer.transform(train_texts)
    )
    new = ["alpha beta words", "a text of no known word"]
    expected = svd.transform(vectorizer.transform(new)).astype(np.float32)
    np.testing.assert_allclose(module(new).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_a_trained_run_predicts_new_texts(texts):
    config = tfidf_config(texts, "label_embedding")
    summary = train(config)
    predictor = labelemb.load(config.run_dir())
    rows = [line.rsplit(",", 1) for line in (texts / "test.csv").read_text().splitlines()[1:]]
    new_texts = [text.strip('"') for text, _ in rows]
    features = raw_text_features(predictor.model, new_texts)
    assert features is not None and features.shape == (30, 6)
    logits = predictor.logits(Split(features, torch.zeros(30, dtype=torch.int64)))
    predicted = [predictor.classes[i] for i in logits.argmax(1).tolist()]
    wrong = sum(p != label for p, (_, label) in zip(predicted, rows))
    assert 100.0 * wrong / len(rows) == pytest.approx(summary["selected_test_error"])
    # The public call reads the texts themselves through the run's fitted TF-IDF, as the above.
    probabilities = predictor.predict_proba(new_texts)
    assert probabilities.shape == (30, 3) and probabilities.argmax(1).tolist() == logits.argmax(1).tolist()


def test_config_mistakes_are_one_line(texts):
    with pytest.raises(ConfigError, match=r"did you mean 'model.vectorizer.min_df'"):
        tfidf_config(texts, vectorizer={"min_dff": 1})
    with pytest.raises(ConfigError, match="set model.freeze: true"):
        tfidf_config(texts, freeze=False)
    with pytest.raises(ConfigError, match="ngram_range"):
        tfidf_config(texts, vectorizer={"ngram_range": [3, 1]})


def test_a_split_is_predicted_from_its_raw_texts_and_word_ids_are_refused(texts):
    from labelemb.predict.reading import split_rows
    from labelemb.predict.source import PredictError

    config = tfidf_config(texts, "onehot")
    summary = train(config)
    predictor = labelemb.load(config.run_dir())
    # labelemb predict RUN --split test: the split's texts through the run's own TF-IDF.
    rows = split_rows(predictor.trained, "test", None)
    predicted = [predictor.classes[i] for i in predictor.logits(rows.items).argmax(1).tolist()]
    wrong = sum(p != label for p, label in zip(predicted, rows.labels))
    assert 100.0 * wrong / len(predicted) == pytest.approx(summary["selected_test_error"])
    # Word ids are never read as features, whatever their width (here the features' own).
    ids = torch.randint(1, 9, (4, predictor.model.backbone.out_features))
    refused = r"^model tfidf reads raw texts \(a list of strings\), not a torch.int64"
    with pytest.raises(TypeError, match=refused):
        predictor.model.backbone(ids)
    split = labelemb.assembly.load_run_data(config).test
    with pytest.raises(PredictError, match="reads raw texts, not a split of word ids"):
        predictor.logits(split)


class _OnDevice(torch.Tensor):
    """A buffer as an accelerator holds it: no numpy() of its own, a copy to the CPU has one."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first")

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).clone()


def test_buffers_off_the_cpu_still_make_features(texts):
    config = tfidf_config(texts)
    train(config)
    module = frozen_backbone(config, None)
    new = ["alpha beta words", "a text of no known word"]
    expected = module(new)
    for name in ("terms", "idf", "directions"):
        setattr(module, name, getattr(module, name).as_subclass(_OnDevice))
    torch.testing.assert_close(module(new).as_subclass(torch.Tensor), expected)


def test_torchscript_and_onnx_exports_are_refused_in_one_line(texts, tmp_path):
    from labelemb.predict.export import export
    from labelemb.predict.source import PredictError

    config = tfidf_config(texts)
    train(config)
    predictor = labelemb.load(config.run_dir())
    for fmt in ("torchscript", "onnx"):
        with pytest.raises(PredictError, match=r"^a TF-IDF run exports as a bundle only: [^\n]*bundle$"):
            export(predictor, fmt, tmp_path / fmt)
        assert not (tmp_path / fmt).exists()


def test_a_bundle_loads_its_saved_buffers_and_reads_no_data(texts, tmp_path, monkeypatch):
    import shutil

    import labelemb.assembly.frozen as frozen
    from labelemb.predict.export import export

    config = tfidf_config(texts)
    train(config)
    new = ["alpha beta words", "a text of no known word", "gamma"]
    expected = labelemb.load(config.run_dir()).predict_proba(new)
    export(labelemb.load(config.run_dir()), "bundle", tmp_path / "bundle")

    def no_data(*args, **kwargs):
        raise AssertionError("loading a bundle read its run's data")

    monkeypatch.setattr(frozen, "load_run_data", no_data)
    monkeypatch.setattr(frozen, "fitted_tfidf", no_data)
    for name in ("train.csv", "test.csv"):
        (texts / name).unlink()
    shutil.rmtree(texts / "cache", ignore_errors=True)
    np.testing.assert_allclose(labelemb.load(tmp_path / "bundle").predict_proba(new), expected, rtol=1e-6)
