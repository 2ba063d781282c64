"""The runs of a comparison judged without reading and fitting their data again (issue 100's speed
goal): evaluating two seeds of a TF-IDF run reads the files once, fits (reads) the TF-IDF of the
classifier once and makes the scored features once, and every figure is the one a fresh process
computes."""

from __future__ import annotations

import pytest
import torch
from helpers.tfidf_runs import text_folder, tfidf_run

from labelemb.data.files import loader
from labelemb.data.files.memo import forget_data_sets
from labelemb.evaluation import run as evaluation_run
from labelemb.predict import network
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")


def counted(monkeypatch, module, name: str) -> list[int]:
    """Count the calls of ``module.name`` (still made)."""
    calls: list[int] = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def fresh_process(monkeypatch) -> None:
    """What a new process holds: no data set, fitted TF-IDF or scored features kept."""
    forget_data_sets()
    monkeypatch.setattr(network, "_FITTED", {})
    monkeypatch.setattr(evaluation_run, "_SCORED", [])


def test_two_seeds_are_judged_on_one_read_of_their_data(tmp_path, monkeypatch):
    folder = text_folder(tmp_path, monkeypatch)
    configs = [tfidf_run(folder, "reuse", "onehot", seed, {"width": 8, "max_terms": 16}) for seed in (0, 1)]
    for config in configs:
        train(config)
    fresh_process(monkeypatch)
    reads = counted(monkeypatch, loader, "read_files")
    fits = counted(monkeypatch, network, "frozen_backbone")
    features = counted(monkeypatch, evaluation_run, "freeze_features")
    records = [evaluation_run.evaluate_run(config.run_dir(), refresh=True) for config in configs]
    assert (len(reads), len(fits), len(features)) == (1, 1, 1)
    assert records[0]["weights"] != records[1]["weights"]
    for config, record in zip(configs, records):
        fresh_process(monkeypatch)
        assert evaluation_run.evaluate_run(config.run_dir(), refresh=True) == record
    assert (len(reads), len(fits), len(features)) == (3, 3, 3)


def test_a_changed_test_file_is_scored_anew(tmp_path, monkeypatch):
    folder = text_folder(tmp_path, monkeypatch)
    config = tfidf_run(folder, "changed", "onehot", 0, {"width": 8, "max_terms": 16})
    train(config)
    fresh_process(monkeypatch)
    before = evaluation_run.evaluate_run(config.run_dir(), refresh=True)
    lines = (folder / "test.csv").read_text(encoding="utf-8").splitlines()
    # The first test text swapped with the second: other rows, the same bytes in all.
    lines[1], lines[2] = lines[2], lines[1]
    (folder / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    after = evaluation_run.evaluate_run(config.run_dir())
    assert after["data"] != before["data"]
    fresh_process(monkeypatch)
    assert evaluation_run.evaluate_run(config.run_dir(), refresh=True) == after


def test_a_cleaned_run_never_shares_the_fitted_tfidf_of_an_uncleaned_one(tmp_path, monkeypatch):
    # data.clean removes training texts, and the TF-IDF is fitted to the training texts: a run
    # cleaned by a list and one on every row (a clean-then-train comparison) fit their own.
    folder = text_folder(tmp_path, monkeypatch)
    plain = tfidf_run(folder, "plain", "onehot", 0, {"width": 8, "max_terms": 16})
    listed = folder / "label_issues.csv"
    listed.write_text("rank,file,row,given_label,suggested_label,score,flagged,fold\n", encoding="utf-8")
    raw = plain.model_dump(mode="json", exclude_unset=True)
    raw["data"]["clean"] = {"issues": str(listed), "action": "remove"}
    cleaned = build_config(raw)
    fresh_process(monkeypatch)
    built: list[str] = []
    network.kept_fitted(plain, False, lambda: built.append("plain") or torch.nn.Linear(1, 1))
    network.kept_fitted(cleaned, False, lambda: built.append("cleaned") or torch.nn.Linear(1, 1))
    assert built == ["plain", "cleaned"]
    # Another list (its bytes) is other training texts too.
    listed.write_text(listed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    network.kept_fitted(cleaned, False, lambda: built.append("relisted") or torch.nn.Linear(1, 1))
    assert built == ["plain", "cleaned", "relisted"]
