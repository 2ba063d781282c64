"""labelemb predict on a multi-label run (issue 81, part 4): each input's tags are those whose sigmoid
probability reaches the run's threshold (or --threshold, or the --top-k most probable), from a .txt,
a table and --split alike; a bundle predicts the same; --sets and a threshold for one label a row
are refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.predict_helpers import predict, read_output, refused
from helpers.tagged_texts import write_tagged_splits

import labelemb
from labelemb.cli import main
from labelemb.predict import PredictError, TagPrediction
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tagged_run(tmp_path_factory) -> tuple[Path, dict[str, Any], Path]:
    """(run folder, summary, data folder) of a bag-of-words multi-label run of four epochs."""
    root = tmp_path_factory.mktemp("tagged")
    write_tagged_splits(root)
    files = {
        "format": "csv",
        "train": "train.csv",
        "dev": "dev.csv",
        "test": "test.csv",
        "tags_column": "tags",
    }
    raw = {
        "experiment": "tagged",
        "output_dir": str(root / "runs"),
        "data": {"name": "files", "dir": str(root), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 4, "batch_size": 16, "progress": False, "lr": 0.05},
    }
    config = build_config(raw)
    return config.run_dir(), train(config), root


def texts_of(root: Path) -> list[str]:
    with (root / "test.csv").open(newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def by_hand(run: Path, texts: list[str], threshold: float) -> list[tuple[list[str], list[float]]]:
    """Each text's tags and probabilities from the network's scores: the sigmoid of each, those that
    reach ``threshold``, most probable first."""
    predictor = labelemb.load(run)
    probabilities = torch.sigmoid(predictor.logits(texts)).double()
    out = []
    for row in probabilities.tolist():
        chosen = sorted((k for k, p in enumerate(row) if p >= threshold), key=lambda k: -row[k])
        out.append(([predictor.classes[k] for k in chosen], [row[k] for k in chosen]))
    return out


def check_rows(rows: list[dict[str, str]], want: list[tuple[list[str], list[float]]]) -> None:
    assert len(rows) == len(want)
    for row, (tags, probabilities) in zip(rows, want):
        assert row["prediction"].split() == tags
        assert [float(p) for p in row["probabilities"].split()] == pytest.approx(probabilities, abs=1e-6)


def test_a_txt_a_csv_and_the_test_split_give_the_tags_that_reach_the_runs_threshold(
    tagged_run, tmp_path, capsys
):
    run, summary, root = tagged_run
    threshold = summary["selected_tag_threshold"]
    texts = texts_of(root)
    want = by_hand(run, texts, threshold)
    assert any(len(tags) > 1 for tags, _ in want) and any(len(tags) == 1 for tags, _ in want)
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert predict(run, "--input", tmp_path / "texts.txt", "--output", tmp_path / "t.csv") == 0
    rows = read_output(tmp_path / "t.csv")
    assert list(rows[0]) == ["line", "prediction", "probabilities", "threshold"]
    check_rows(rows, want)
    assert {float(row["threshold"]) for row in rows} == {threshold}
    assert f"reaches {threshold:g}" in capsys.readouterr().err
    # A table of the run's columns: the same tags, beside each row's own.
    assert predict(run, "--input", root / "test.csv", "--output", tmp_path / "c.csv") == 0
    table = read_output(tmp_path / "c.csv")
    check_rows(table, want)
    with (root / "test.csv").open(newline="", encoding="utf-8") as handle:
        own = [sorted(row["tags"].split()) for row in csv.DictReader(handle)]
    assert [sorted(row["label"].split()) for row in table] == own
    capsys.readouterr()
    # The run's own test split: its agreement is the one the run's selected check recorded.
    assert predict(run, "--split", "test", "--output", tmp_path / "s.csv") == 0
    check_rows(read_output(tmp_path / "s.csv"), want)
    err = capsys.readouterr().err
    assert f"exact match {summary['selected_test_exact_match']:.2f} %" in err
    assert f"micro-F1 {summary['selected_test_f1_micro']:.2f} %" in err


def test_top_k_and_a_given_threshold_choose_the_tags_instead(tagged_run, tmp_path):
    run, _, root = tagged_run
    texts = texts_of(root)
    probabilities = torch.sigmoid(labelemb.load(run).logits(texts)).double()
    assert predict(run, "--input", root / "test.csv", "--output", tmp_path / "k.jsonl", "--top-k", "2") == 0
    lines = [json.loads(line) for line in (tmp_path / "k.jsonl").read_text().splitlines()]
    names = labelemb.load(run).classes
    for line, row in zip(lines, probabilities):
        best = row.topk(2)
        assert line["prediction"] == [names[k] for k in best.indices.tolist()]
        assert line["probabilities"] == pytest.approx(best.values.tolist(), abs=1e-6)
        assert line["threshold"] == "" and isinstance(line["label"], list)
    assert (
        predict(run, "--input", root / "test.csv", "--output", tmp_path / "h.csv", "--threshold", "0.9") == 0
    )
    rows = read_output(tmp_path / "h.csv")
    check_rows(rows, by_hand(run, texts, 0.9))
    assert {row["threshold"] for row in rows} == {"0.9"}


def test_sets_and_impossible_choices_are_refused_in_one_line(tagged_run, tmp_path, capsys):
    run, _, root = tagged_run
    out = tmp_path / "o.csv"
    err = refused(capsys, run, "--split", "test", "--output", out, "--sets", "0.9")
    assert "multi-label run" in err and "softmax" in err and "drop --sets" in err
    err = refused(capsys, run, "--split", "test", "--output", out, "--threshold", "0.5", "--top-k", "2")
    assert "not both" in err
    assert "in (0, 1)" in refused(capsys, run, "--split", "test", "--output", out, "--threshold", "1.5")
    # A table's own tag that the run does not know, named where it is.
    (tmp_path / "own.csv").write_text("text,tags\npython pip module,python\ngtk window,gui bogus\n")
    err = refused(capsys, run, "--input", tmp_path / "own.csv", "--output", out)
    assert "own.csv, line 3: tag 'bogus' is not a tag of the run" in err
    assert not out.exists()


def test_a_threshold_for_a_single_label_run_is_refused(small_config, tmp_path, capsys):
    config = small_config("method.name=onehot")
    train(config)
    err = refused(
        capsys, config.run_dir(), "--split", "test", "--output", tmp_path / "o.csv", "--threshold", "0.5"
    )
    assert "multi-label" in err and "drop the threshold" in err


def test_python_gives_the_same_tags_probabilities_and_refusals(tagged_run):
    run, summary, root = tagged_run
    texts = texts_of(root)[:6]
    predictor = labelemb.load(run)
    assert predictor.multi_label and predictor.threshold == summary["selected_tag_threshold"]
    probabilities = predictor.predict_proba(texts)
    assert np.allclose(probabilities, torch.sigmoid(predictor.logits(texts)).double().numpy())
    predictions = predictor.predict(texts)
    assert all(isinstance(p, TagPrediction) for p in predictions)
    assert [(list(p.tags), list(p.probabilities)) for p in predictions] == by_hand(
        run, texts, predictor.threshold
    )
    assert all(len(p.tags) == 3 for p in predictor.predict(texts, top_k=3))
    assert [list(p.tags) for p in predictor.predict(texts, threshold=0.9)] == [
        tags for tags, _ in by_hand(run, texts, 0.9)
    ]
    with pytest.raises(PredictError, match="multi-label run"):
        predictor.predict_sets(texts, 0.9)


def test_a_bundle_and_the_other_exports_predict_the_same_tags(tagged_run, tmp_path):
    run, summary, root = tagged_run
    bundle = tmp_path / "bundle"
    assert main(["export", str(run), "--format", "bundle", "--output", str(bundle)]) == 0
    described = json.loads((bundle / "bundle.json").read_text())
    assert described["reads"] == "texts" and described["multi_label"] is True
    assert described["tag_threshold"] == summary["selected_tag_threshold"]
    texts = texts_of(root)
    assert labelemb.load(bundle).predict(texts) == labelemb.load(run).predict(texts)
    for source, name in ((run, "r.csv"), (bundle, "b.csv")):
        assert predict(source, "--input", root / "test.csv", "--output", tmp_path / name) == 0
    assert read_output(tmp_path / "r.csv") == read_output(tmp_path / "b.csv")
    # A bundle whose description no longer says tag sets is refused, naming the field.
    described["multi_label"] = False
    (bundle / "bundle.json").write_text(json.dumps(described))
    with pytest.raises(PredictError, match="multi_label false"):
        labelemb.load(bundle)
    assert main(["export", str(run), "--format", "torchscript", "--output", str(tmp_path / "ts")]) == 0
    steps = json.loads((tmp_path / "ts" / "preprocessing.json").read_text())
    assert steps["multi_label"] and steps["tag_threshold"] == summary["selected_tag_threshold"]
    assert steps["probabilities"].startswith("sigmoid")


def test_evaluate_refuses_a_multi_label_run_in_one_line(tagged_run, capsys):
    run, _, _ = tagged_run
    assert main(["evaluate", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "multi-label run" in err and "summary.json" in err
