"""The TF-IDF of a text data set (issue 100): scikit-learn's TfidfVectorizer fitted on train alone,
computed once and cached as data; a changed option or text makes new matrices, never a stale
file; texts with no words and a vocabulary that comes out empty are one line each."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from labelemb.data.base import DataError
from labelemb.data.text import tfidf as tfidf_module
from labelemb.data.text.classes import text_class_dataset
from labelemb.data.text.options import TfidfOptions
from labelemb.data.text.tfidf import FittedTfidf, tfidf_matrices
from labelemb.options import OptionsError, read_options

TRAIN = [
    "a python library for parsing json files",
    "python bindings for the gnome desktop",
    "kde desktop applet showing the weather",
    "json parsing library for perl scripts",
    "gnome desktop theme with dark colours",
    "perl module for parsing json and yaml",
]
DEV = ["a kde theme for the desktop", "yaml parsing in python"]
TEST = ["json files for the gnome desktop", "unknown words only here", "perl scripts for kde"]


def dataset(train=TRAIN, dev=DEV, test=TEST):
    texts = {"train": list(train), "dev": list(dev), "test": list(test)}
    labels = {split: np.arange(len(rows)) % 2 for split, rows in texts.items()}
    return text_class_dataset("tiny", texts, labels, ["a", "b"])


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def test_the_matrices_are_scikit_learns_tfidf_fitted_on_train(cache):
    options = TfidfOptions(min_df=1)
    matrices = tfidf_matrices(dataset(), options, cache, progress=False)
    direct = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    expected = {
        "train": direct.fit_transform(TRAIN),
        "dev": direct.transform(DEV),
        "test": direct.transform(TEST),
    }
    assert matrices.vectorizer.terms == list(direct.get_feature_names_out())
    for split, matrix in expected.items():
        ours = getattr(matrices, split)
        assert ours.shape == matrix.shape and ours.dtype == np.float32
        np.testing.assert_allclose(ours.toarray(), matrix.toarray(), rtol=1e-6, atol=1e-7)
    # The vectorizer kept as data turns new texts into the same columns.
    np.testing.assert_allclose(
        matrices.vectorizer.transform(["python desktop json"]).toarray(),
        direct.transform(["python desktop json"]).toarray(),
        rtol=1e-6,
        atol=1e-7,
    )


def test_other_options_reach_the_vectorizer(cache):
    options = TfidfOptions(analyzer="char_wb", ngram_range=(2, 3), sublinear_tf=False, min_df=1, norm="l1")
    matrices = tfidf_matrices(dataset(), options, cache, progress=False)
    direct = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=1, norm="l1")
    np.testing.assert_allclose(
        matrices.test.toarray(), direct.fit(TRAIN).transform(TEST).toarray(), rtol=1e-6
    )


def test_a_second_call_reads_the_cache_and_a_change_makes_new_matrices(cache, monkeypatch):
    fits = []
    real_fit = tfidf_module.fit_tfidf

    def counted(options, train):
        fits.append(options)
        return real_fit(options, train)

    monkeypatch.setattr(tfidf_module, "fit_tfidf", counted)
    first = tfidf_matrices(dataset(), TfidfOptions(min_df=1), cache, progress=False)
    second = tfidf_matrices(dataset(), TfidfOptions(min_df=1), cache, progress=False)
    assert (first.reused, second.reused, len(fits)) == (False, True, 1)
    np.testing.assert_array_equal(second.train.toarray(), first.train.toarray())
    # A changed option, a changed training text, a changed test text: each a new file and a new fit.
    other_option = tfidf_matrices(dataset(), TfidfOptions(min_df=1, binary=True), cache, progress=False)
    other_train = tfidf_matrices(
        dataset(train=[*TRAIN[:-1], "perl"]), TfidfOptions(min_df=1), cache, progress=False
    )
    other_test = tfidf_matrices(
        dataset(test=[*TEST[:-1], "kde"]), TfidfOptions(min_df=1), cache, progress=False
    )
    assert len(fits) == 4
    assert len({m.path for m in (first, other_option, other_train, other_test)}) == 4
    assert other_test.test.shape[0] == 3 and other_test.test[2].nnz == 1


def test_a_file_that_is_not_its_key_is_built_again(cache):
    first = tfidf_matrices(dataset(), TfidfOptions(min_df=1), cache, progress=False)
    data = bytearray(first.path.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in the last tensor's bytes
    first.path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="is damaged"):
        again = tfidf_matrices(dataset(), TfidfOptions(min_df=1), cache, progress=False)
    assert not again.reused
    np.testing.assert_array_equal(again.test.toarray(), first.test.toarray())


def test_no_dev_split(cache):
    texts = {"train": TRAIN, "test": TEST}
    labels = {split: np.arange(len(rows)) % 2 for split, rows in texts.items()}
    matrices = tfidf_matrices(
        text_class_dataset("tiny", texts, labels, ["a", "b"]), None, cache, progress=False
    )
    assert matrices.dev is None and matrices.test.shape[0] == 3


def test_texts_without_words_are_one_line(cache):
    with pytest.raises(DataError) as caught:
        tfidf_matrices(dataset(train=[" "] * 6), TfidfOptions(min_df=1), cache, progress=False)
    assert "every training text is empty" in str(caught.value) and "\n" not in str(caught.value)


def test_an_empty_vocabulary_is_one_line(cache):
    with pytest.raises(DataError) as caught:
        tfidf_matrices(dataset(), TfidfOptions(min_df=50), cache, progress=False)
    message = str(caught.value)
    assert (
        "left no terms" in message and "model.vectorizer.min_df (now 50)" in message and "\n" not in message
    )


def test_options_are_checked_with_a_did_you_mean():
    with pytest.raises(
        OptionsError,
        match=r"'model.vectorizer.min_dff' does not exist; did you mean 'model.vectorizer.min_df'",
    ):
        read_options(TfidfOptions, {"min_dff": 3}, "model.vectorizer")
    with pytest.raises(OptionsError, match="ngram_range"):
        TfidfOptions(ngram_range=(2, 1)).check()
    with pytest.raises(OptionsError, match="min_df"):
        TfidfOptions(min_df=1.5).check()
    assert TfidfOptions().vectorizer_arguments()["ngram_range"] == (1, 2)


def test_the_fitted_vectorizer_round_trips_as_tensors():
    fitted = FittedTfidf(
        TfidfOptions(), ["python", "perl \u00e9t\u00e9", 'a "quoted"\nterm'], np.array([1.0, 2.5, 3.0])
    )
    back = FittedTfidf.from_tensors(TfidfOptions(), fitted.tensors())
    assert back.terms == fitted.terms and np.array_equal(back.idf, fitted.idf)
