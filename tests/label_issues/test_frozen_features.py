"""Finding wrong labels on a frozen backbone (issue 101): the features are computed once for every
fold, each fold's head scores its held-out rows as its whole network would, and the neighbours' vote
on those features is a detector of its own, judged beside cleanlab's; a frozen text encoder's folds
train on its features too."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.predict_helpers import text_table
from sklearn.neighbors import NearestNeighbors

import labelemb
from labelemb.assembly import frozen, load_run_data
from labelemb.label_issues.folds import fold_dataset
from labelemb.label_issues.listing import PROBABILITIES_NPZ, SUMMARY_JSON
from labelemb.label_issues.neighbours import KNN_VOTE, knn_vote
from labelemb.training import load_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_frozen_backbone_runs_once_and_its_heads_score_the_held_out_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    seen = []  # the rows each pass of a frozen backbone read

    def counted(*args, **kwargs):
        backbone = real(*args, **kwargs)
        backbone.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
        return backbone

    real = frozen.built_frozen
    monkeypatch.setattr(frozen, "built_frozen", counted)
    overrides = [
        "model.hidden=[16]",
        "model.freeze=true",
        "method.name=onehot",
        "train.epochs=2",
        "noise.kind=symmetric",
        "noise.rate=0.3",
        f"output_dir={tmp_path / 'runs'}",
        "experiment=frozen",
    ]
    issues = labelemb.find_label_issues(None, folds=2, overrides=overrides, progress=False)
    # The features of every split, once (1,197 + 300 + 300 digits); no fold ran the backbone again.
    assert sum(seen) == 1797
    saved = np.load(issues.folder / PROBABILITIES_NPZ)
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    raw = load_run_data(load_config(f"{summary['fold_runs'][0]}/config.yaml"))
    for k, run_dir in enumerate(summary["fold_runs"]):
        held = np.flatnonzero(saved["fold"] == k)
        # The whole network (backbone and head) on the raw held-out images: the same probabilities.
        whole = labelemb.load(run_dir).predict_proba(fold_dataset(raw, held).test)
        np.testing.assert_allclose(saved["probabilities"][held], whole, rtol=1e-5, atol=1e-7)
    assert all(KNN_VOTE in row for row in issues.rows)
    assert set(issues.judged["detectors"]) == {*labelemb.label_issues.DETECTORS, KNN_VOTE}


def test_the_neighbours_vote_is_the_share_of_the_k_nearest_rows_with_the_same_label():
    generator = np.random.default_rng(0)
    features = generator.normal(size=(300, 5)).astype(np.float32)
    labels = generator.integers(0, 3, 300)
    votes = knn_vote(torch.from_numpy(features), labels, k=7)
    # scikit-learn's cosine neighbours, each row's own first match dropped.
    _, nearest = NearestNeighbors(n_neighbors=8, metric="cosine").fit(features).kneighbors(features)
    expected = (labels[nearest[:, 1:]] == labels[:, None]).mean(axis=1)
    assert np.array_equal(nearest[:, 0], np.arange(300))
    np.testing.assert_allclose(votes, expected)


def test_a_frozen_text_encoders_folds_train_on_its_features_once_computed(tmp_path, monkeypatch):
    # The trainer's text task reads the data set's vocabulary, which the features keep: the folds
    # train their heads on the features, which score the held-out texts as the whole network would.
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    text_table(tmp_path / "train.csv", 60, 0)
    text_table(tmp_path / "test.csv", 12, 1)
    raw = {
        "experiment": "encoded",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "files", "dir": str(tmp_path), "files": {"train": "train.csv", "test": "test.csv"}},
        "model": {"name": "sentence_encoder", "freeze": True},
        "method": {"name": "onehot"},
        "train": {"epochs": 2, "batch_size": 10, "lr": 0.01, "progress": False},
    }
    issues = labelemb.find_label_issues(raw, folds=2, progress=False)
    saved = np.load(issues.folder / PROBABILITIES_NPZ)
    summary = json.loads((issues.folder / SUMMARY_JSON).read_text())
    texts = load_run_data(load_config(f"{summary['fold_runs'][0]}/config.yaml"))
    for k, run_dir in enumerate(summary["fold_runs"]):
        held = np.flatnonzero(saved["fold"] == k)
        whole = labelemb.load(run_dir).predict_proba(fold_dataset(texts, held).test)
        np.testing.assert_allclose(saved["probabilities"][held], whole, rtol=1e-5, atol=1e-7)
    assert all(0.0 <= row[KNN_VOTE] <= 1.0 for row in issues.rows)
    assert sorted(row["row"] for row in issues.rows) == sorted(texts.train.origins.rows.tolist())
