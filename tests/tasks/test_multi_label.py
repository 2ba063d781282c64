"""The multi-label text task: tiny CSVs of tagged texts trained end to end, the figures a check
records, the rest's figures, the methods it trains and refuses, and stacked seeds."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from helpers.batched_checks import train_batched
from helpers.tagged_texts import TAGGED_FILES, write_tagged_splits

from labelemb.config import ConfigError
from labelemb.metrics.figures import MULTI_LABEL_FIGURES, figure_of
from labelemb.metrics.tag_calibration import marginal_ece, tag_temperatures
from labelemb.tasks.multi_label import (
    TEST_CALIBRATION,
    MultiLabelText,
    degenerate_tag_sets,
    degenerate_tag_sets_warning,
)
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tagged")
    write_tagged_splits(root)
    return root


def tagged_config(folder: Path, output_dir: Path, *overrides: str, **top_level: Any):
    raw: dict[str, Any] = {
        "experiment": "tagged",
        "output_dir": str(output_dir),
        "data": {
            "name": "files",
            "dir": str(folder),
            "files": dict(TAGGED_FILES),
        },
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 4, "batch_size": 16, "progress": False, "lr": 0.05},
        **top_level,
    }
    return build_config(raw, list(overrides))


@pytest.mark.parametrize("method", ["onehot", "label_smoothing", "focal", "asl", "label_embedding"])
def test_every_method_for_tag_sets_trains_and_ranks_the_tags(folder, tmp_path, method):
    summary = train(tagged_config(folder, tmp_path, f"method.name={method}"))
    assert summary["scoring"]["metric"] == "test_map_macro" and summary["scoring"]["higher_is_better"]
    # Four tags, each with its own words: far above the constant ranking's mAP (each tag's share).
    assert summary["selected_test_map_macro"] > 80.0, summary["selected_test_map_macro"]
    for figure in MULTI_LABEL_FIGURES:
        assert summary[f"selected_test_{figure.name}"] is not None, figure.name
    for name in TEST_CALIBRATION:
        assert 0 <= summary[f"selected_test_{name}"] <= 100, name
    assert 0 < summary["selected_tag_threshold"] < 1
    assert summary["selected_tag_temperature"] > 0
    assert summary["data"]["tag_sets"]["train"]["rows"] == 160
    assert "selected_degenerate_tag_sets" not in summary  # a run that learnt: no warning


def test_the_tag_embedding_trains_on_its_fused_closed_forms(folder, tmp_path):
    # The run counts its FLOPs first (under a dispatch mode, where torch.compile cannot trace).
    method = "method.name=label_embedding"
    fused = train(tagged_config(folder, tmp_path / "fused", method, "method.fast_path=fused"))
    written = train(tagged_config(folder, tmp_path / "written", method))
    assert fused["train_flops"] == written["train_flops"] > 0
    assert fused["selected_test_map_macro"] == pytest.approx(written["selected_test_map_macro"], abs=1.0)


def test_a_check_records_every_figure_on_dev_and_test_in_its_unit(folder, tmp_path):
    config = tagged_config(folder, tmp_path)
    train(config)
    records = [
        json.loads(line) for line in (Path(config.run_dir()) / "metrics.jsonl").read_text().splitlines()
    ]
    record = records[-1]
    for split in ("dev", "test"):
        for figure in MULTI_LABEL_FIGURES:
            value = record[f"{split}_{figure.name}"]
            assert (0.0 <= value <= 100.0) if figure.share else value >= 1.0, (split, figure.name, value)
    # Calibration per tag: raw on both splits, scaled on test alone (dev fits the temperatures).
    for key in ("dev_tag_ece", *(f"test_{name}" for name in TEST_CALIBRATION)):
        assert 0.0 <= record[key] <= 100.0 and figure_of(key).lower_is_better, key
    assert "dev_tag_ece_scaled" not in record and "dev_tag_ece_per_tag" not in record
    assert record["tag_temperature"] > 0 and figure_of("tag_temperature").unit == "plain"
    assert "dev_rest_map_macro" not in record  # no tag set apart


def test_the_rest_is_judged_apart_from_the_rows_whose_every_tag_is_set_apart(folder, tmp_path):
    config = tagged_config(folder, tmp_path, "tags.set_apart=[lib]")
    summary = train(config)
    lines = (Path(config.run_dir()) / "metrics.jsonl").read_text().splitlines()
    selected = next(record for record in map(json.loads, lines) if record["step"] == summary["selected_step"])
    # The rows carrying "lib" alone are left out: other figures, each in the summary as recorded.
    assert selected["test_rest_map_macro"] != selected["test_map_macro"]
    for name in [figure.name for figure in MULTI_LABEL_FIGURES] + list(TEST_CALIBRATION):
        assert summary[f"selected_test_rest_{name}"] == selected[f"test_rest_{name}"]
    assert "dev_rest_tag_ece" in selected and "dev_rest_tag_ece_scaled" not in selected


def tag_split(seed: int, count: int = 60) -> SimpleNamespace:
    """A split of 5 features and 4 tags, drawn from a linear model with a tag no row carries."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, 5, generator=generator)
    tags = torch.rand(count, 4, generator=generator) < torch.sigmoid(2 * inputs[:, :4])
    tags[:, 3] = False
    return SimpleNamespace(inputs=inputs, labels=tags)


def test_the_temperatures_are_fit_on_dev_alone_and_judged_on_test():
    dev, test = tag_split(0), tag_split(1)
    weights = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    calls = []

    def predict(rows: torch.Tensor) -> torch.Tensor:
        calls.append(len(rows))
        return rows @ weights

    task = MultiLabelText(eval_batch_size=100)
    results = task.evaluate(predict, dev, test)
    assert calls == [60, 60]  # each split's logits computed once
    fitted = tag_temperatures(dev.inputs @ weights, dev.labels)
    assert results["tag_temperature"] == pytest.approx(fitted.one)
    assert fitted.per_tag[3] == 1.0  # the tag dev never carries keeps its raw probabilities
    logits = test.inputs @ weights
    expected = {
        "test_tag_ece": marginal_ece(torch.sigmoid(logits), test.labels),
        "test_tag_ece_scaled": marginal_ece(torch.sigmoid(logits / fitted.one), test.labels),
        "test_tag_ece_per_tag": marginal_ece(
            torch.sigmoid(logits / torch.as_tensor(fitted.per_tag, dtype=torch.float32)), test.labels
        ),
        "dev_tag_ece": marginal_ece(torch.sigmoid(dev.inputs @ weights), dev.labels),
    }
    for key, value in expected.items():
        assert results[key] == pytest.approx(100 * value, abs=1e-4), key  # recorded in percent
    # Without a dev split: nothing to fit, the raw figure alone.
    alone = task.evaluate(predict, None, test)
    assert alone["test_tag_ece"] == pytest.approx(results["test_tag_ece"])
    assert not {"tag_temperature", "test_tag_ece_scaled", "test_tag_ece_per_tag"} & set(alone)


def test_tag_sets_are_degenerate_where_most_rows_get_most_of_the_tags_they_do_not_carry():
    tags = torch.zeros(10, 40, dtype=torch.bool)
    tags[:, :2] = True  # every row carries 2 of 40 tags
    # The run: every probability 0.49-0.50 against a threshold of 0.48.
    flat = 0.49 + 0.01 * torch.rand(10, 40, generator=torch.Generator().manual_seed(0))
    facts = degenerate_tag_sets(flat, tags, 0.48)
    assert facts == {
        "rows": 1.0,
        "tags_per_row": 40.0,
        "carried_per_row": 2.0,
        "tags": 40,
        "probabilities": [pytest.approx(float(flat.min())), pytest.approx(float(flat.max()))],
        "threshold": 0.48,
    }
    said = degenerate_tag_sets_warning(facts)
    assert "40.0 of 40 tags per text" in said and "carry 2.0" in said and "100 % of the texts" in said
    assert "0.49-0.50" in said and "train.epochs" in said and "train.lr" in said
    # Half the rows given 30 of their 38 absent tags is not most rows; one more row is.
    some = torch.where(tags, 0.9, 0.1)
    some[:5, 2:32] = 0.9
    assert degenerate_tag_sets(some, tags, 0.5) is None
    some[5, 2:32] = 0.9
    assert degenerate_tag_sets(some, tags, 0.5)["rows"] == pytest.approx(0.6)
    # Given exactly half of its absent tags, a row is not given most of them.
    some[:, 2:21], some[:, 21:] = 0.9, 0.1
    assert degenerate_tag_sets(some, tags, 0.5) is None


def test_a_run_whose_selected_tag_sets_are_degenerate_records_it_and_warns_once(folder, tmp_path, caplog):
    # A learning rate too small to move the tags apart: every probability near one half.
    config = tagged_config(folder, tmp_path, "train.lr=1e-7", "train.epochs=2")
    with caplog.at_level(logging.WARNING, logger="labelemb"):
        summary = train(config)
    facts = summary["selected_degenerate_tag_sets"]
    assert facts["rows"] > 0.5 and facts["tags"] == 4 and facts["tags_per_row"] > 2
    lines = (Path(config.run_dir()) / "metrics.jsonl").read_text().splitlines()
    selected = next(record for record in map(json.loads, lines) if record["step"] == summary["selected_step"])
    assert selected["degenerate_tag_sets"] == facts
    said = [r.getMessage() for r in caplog.records if "tag sets are degenerate" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("onehot (seed 0): at the selected check"), said
    assert "of 4 tags per text" in said[0]


def test_the_rest_rows_are_those_with_a_tag_outside_the_set_apart():
    task = MultiLabelText(set_apart=(0,))
    tags = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.bool)
    assert task.rest_rows(tags).tolist() == [False, True, True, False]


def test_a_method_built_for_one_label_is_refused_before_anything_trains(folder, tmp_path):
    with pytest.raises(ConfigError, match="ols.*tag set"):
        tagged_config(folder, tmp_path, "method.name=ols")
    with pytest.raises(
        ValueError, match="tags.set_apart names 'nosuchtag', which the training tags do not hold"
    ):
        train(tagged_config(folder, tmp_path, "tags.set_apart=[nosuchtag]"))


@pytest.mark.parametrize("method", ["onehot", "label_embedding", "asl"])
def test_stacked_seeds_give_the_figures_of_seeds_trained_one_by_one(folder, tmp_path, method):
    configs = [tagged_config(folder, tmp_path / "alone", f"method.name={method}", seed=s) for s in (0, 1)]
    alone = train(configs, batched=False, progress=False)
    stacked = train_batched(
        [tagged_config(folder, tmp_path / "stacked", f"method.name={method}", seed=s) for s in (0, 1)]
    )
    for one, many in zip(alone, stacked):
        assert many["selected_step"] == one["selected_step"]
        assert many["selected_test_map_macro"] == pytest.approx(one["selected_test_map_macro"], abs=1e-3)


def test_the_run_tells_label_embedding_it_serves_tag_sets_before_any_step(folder, tmp_path):
    # A run resumed from its last checkpoint saves its representation without another step: the
    # method must know from its build that its representation is the tag rows.
    from labelemb.assembly.plan import data_of, method_of
    from labelemb.methods.label_embedding.tags import tag_rows

    config = tagged_config(folder, tmp_path, "method.name=label_embedding")
    factory = method_of(config)
    assert "tag_sets" in factory.told
    method = factory.build(8, data_of(config).load())
    assert method.trained_on_tags
    torch.testing.assert_close(method.label_representation(), torch.sigmoid(tag_rows(method.embedding)))
