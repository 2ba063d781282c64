"""What the tests of ``model.name: tfidf`` share: a folder of three classes' texts and a run of
that model on it (the SVD or the learned projection, by the model options given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.predict_helpers import text_table
from labelemb.training import build_config


def text_folder(folder: Path, monkeypatch: Any) -> Path:
    """train.csv and test.csv of three classes' words in ``folder``, and a fresh cache folder."""
    monkeypatch.setenv("LABELEMB_CACHE", str(folder / "cache"))
    text_table(folder / "train.csv", 90, 0)
    text_table(folder / "test.csv", 30, 1)
    return folder


def tfidf_run(folder: Path, experiment: str, method: str, seed: int, model: dict[str, Any]) -> Any:
    """A run of ``model.name: tfidf`` with ``model`` (its options) on ``folder``'s texts."""
    raw = {
        "experiment": experiment,
        "output_dir": str(folder / "runs"),
        "seed": seed,
        "data": {"name": "files", "dir": str(folder), "files": {"train": "train.csv", "test": "test.csv"}},
        "model": {"name": "tfidf", "freeze": True, "vectorizer": {"min_df": 1}, **model},
        "method": {"name": method},
        "train": {"epochs": 3, "batch_size": 10, "lr": 0.05, "progress": False},
    }
    return build_config(raw)
