"""Text classification: the data set of texts, the bag-of-words backbone, the task's batches and
metrics, every method on it, batched seeds and determinism.

Every run trains on a tiny data set written here (three classes, each with its own words among
shared filler words) with an 8-dimensional bag of words, so a run takes a fraction of a second.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from helpers.batched_checks import train_batched
from helpers.repo_paths import DOCS
from sklearn.metrics import f1_score

from labelemb import methods
from labelemb.assembly.plan import plan_run
from labelemb.data.text.classes import TextClassSplit, text_class_dataset
from labelemb.metrics import fit_temperature, measure_calibration
from labelemb.models import build_model
from labelemb.models.bag_of_words import BIGRAM_PRIME, BagOfWords, bag_entries, bigram_ids, mean_bag
from labelemb.tasks import CALIBRATION_FIELDS, build_task
from labelemb.tasks.calibration import DEV_FIELDS
from labelemb.tasks.text_classification import TextClassification, length_grouped_order, macro_f1
from labelemb.training import build_config, train
from labelemb.training.results import summarize
from labelemb.training.seed_run import Progress

pytestmark = pytest.mark.usefixtures("one_thread")

CLASS_WORDS = [
    ["apple", "banana", "cherry", "fruit"],
    ["python", "perl", "ruby", "code"],
    ["gnome", "kde", "xfce", "desktop"],
]
CLASS_NAMES = ["fruit", "languages", "desktops"]
FILLER = ["the", "a", "package", "for", "with", "and", "tool"]
TIMING = {"wall_seconds", "train_seconds", "seconds_per_epoch"}
SEEDS = (0, 1, 2)


def tiny_split(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``count`` texts of 3 to 11 words: each word one of its class's words or a filler word."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASS_WORDS), count)
    texts = [
        " ".join(rng.choice(CLASS_WORDS[label] + FILLER, size=int(rng.integers(3, 12)))) for label in labels
    ]
    return texts, labels.astype(np.int64)


def tiny_dataset(**options: Any):
    splits = {"train": tiny_split(96, 0), "dev": tiny_split(24, 1), "test": tiny_split(24, 2)}
    return text_class_dataset(
        "tiny-texts",
        {name: texts for name, (texts, _) in splits.items()},
        {name: labels for name, (_, labels) in splits.items()},
        CLASS_NAMES,
        **options,
    )


@pytest.fixture(scope="module")
def texts():
    return tiny_dataset()


def text_config(output_dir: Path, *overrides: str, **top_level: Any):
    """A tiny bag-of-words run (6 batches of 16 per epoch, 2 epochs) on the texts of a CSV."""
    raw: dict[str, Any] = {
        "experiment": "texts",
        "output_dir": str(output_dir),
        "data": {"name": "files", "files": {"format": "csv", "train": "train.csv", "test": "test.csv"}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 2, "batch_size": 16, "progress": False, "lr": 0.01},
        **top_level,
    }
    return build_config(raw, list(overrides))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def untimed(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in TIMING}


# ---------------------------------------------------------------- the data set


def test_the_vocabulary_comes_from_train_alone():
    dataset = text_class_dataset(
        "t",
        {"train": ["b a b", "c b"], "dev": None, "test": ["a zebra b"]},
        {"train": np.array([0, 1]), "dev": None, "test": np.array([1])},
        ["x", "y"],
    )
    tokens = dataset.vocabulary.tokens
    assert tokens[:2] == ["<pad>", "<unk>"]
    assert tokens[4:] == ["b", "a", "c"]  # most frequent first, ties in order of first appearance
    assert "zebra" not in tokens
    assert dataset.test.inputs.tolist() == [[5, 1, 4]]  # zebra is <unk>
    assert dataset.input_shape == (len(tokens),) and dataset.num_classes == 2
    assert dataset.dev is None and dataset.yields == "texts"


def test_texts_are_padded_to_the_longest_and_cut_to_the_limit():
    dataset = text_class_dataset(
        "t",
        {"train": ["a b c d e", "a", "b c"], "dev": ["a b c d e f g"], "test": ["c"]},
        {"train": np.array([0, 1, 0]), "dev": np.array([1]), "test": np.array([0])},
        ["x", "y"],
        max_text_tokens=4,
    )
    train = dataset.train
    assert isinstance(train, TextClassSplit) and train.inputs.dtype == torch.int64
    assert train.inputs.shape == (3, 4)  # the longest kept text
    assert train.lengths.tolist() == [4, 1, 2]
    assert (train.inputs[1, 1:] == 0).all() and (train.inputs[2, 2:] == 0).all()  # padded with <pad>
    assert "e" not in dataset.vocabulary.tokens  # cut away before the vocabulary is built
    assert dataset.dev.inputs.shape == (1, 4) and dataset.test.inputs.shape == (1, 1)
    assert dataset.cut_texts == {"train": 1, "dev": 1, "test": 0}
    uncut = text_class_dataset(
        "t",
        {"train": ["a b c d e"], "test": ["c"]},
        {"train": np.array([0]), "test": np.array([1])},
        ["x", "y"],
        max_text_tokens=None,
    )
    assert uncut.train.lengths.tolist() == [5]


def test_labels_must_match_the_texts_and_the_classes():
    with pytest.raises(ValueError, match="2 texts but labels of shape"):
        text_class_dataset(
            "t",
            {"train": ["a", "b"], "test": ["a"]},
            {"train": np.array([0]), "test": np.array([0])},
            ["x", "y"],
        )
    with pytest.raises(ValueError, match="outside"):
        text_class_dataset(
            "t", {"train": ["a"], "test": ["a"]}, {"train": np.array([2]), "test": np.array([0])}, ["x", "y"]
        )


def test_a_split_keeps_its_lengths_when_moved_or_shortened(texts):
    moved = texts.train.to(torch.device("cpu")).first(5)
    assert isinstance(moved, TextClassSplit)
    assert torch.equal(moved.lengths, texts.train.lengths[:5])


# ---------------------------------------------------------------- the backbone


def test_bigrams_are_hashed_after_the_vocabulary_and_skip_padding():
    ids = torch.tensor([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0]])
    bigrams, real = bigram_ids(ids, vocabulary_size=10, buckets=4)
    first = 10 + (5 * BIGRAM_PRIME + 7) % 4
    second = 10 + (7 * BIGRAM_PRIME + 9) % 4
    assert bigrams.tolist() == [[first, second, 0, 0], [0, 0, 0, 0]]
    assert real.tolist() == [[True, True, False, False], [False] * 4]
    entries, weights = bag_entries(ids, vocabulary_size=10, buckets=4)
    assert entries.tolist()[0] == [5, 7, 9, 0, 0, first, second, 0, 0]
    # Three words and two bigrams: a fifth each; one word and no bigram: all of it.
    assert weights[0].tolist() == pytest.approx([0.2, 0.2, 0.2, 0, 0, 0.2, 0.2, 0, 0])
    assert weights[1].tolist() == pytest.approx([1, 0, 0, 0, 0, 0, 0, 0, 0])


def test_the_bag_is_the_mean_of_the_words_and_bigrams_by_hand():
    table = torch.randn(14, 3)
    ids = torch.tensor([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    first, second = 10 + (5 * BIGRAM_PRIME + 7) % 4, 10 + (7 * BIGRAM_PRIME + 9) % 4
    expected = torch.stack(
        [table[[5, 7, 9, first, second]].mean(0), table[3], torch.zeros(3)]  # no words: a zero bag
    )
    torch.testing.assert_close(mean_bag(ids, table, 10, 4), expected)
    # Words only.
    torch.testing.assert_close(mean_bag(ids, table, 10, 0)[0], table[[5, 7, 9]].mean(0))
    # Stacked seeds: each reads its own table.
    tables = torch.randn(2, 14, 3)
    stacked = mean_bag(torch.stack([ids, ids.flip(0)]), tables, 10, 4)
    torch.testing.assert_close(stacked[0], mean_bag(ids, tables[0], 10, 4))
    torch.testing.assert_close(stacked[1], mean_bag(ids.flip(0), tables[1], 10, 4))


def test_padding_never_changes_the_features_nor_gets_a_gradient():
    model = BagOfWords((20,), embedding_dim=4, bigram_buckets=8, hidden=(5,))
    ids = torch.tensor([[4, 6, 11]])
    padded = torch.tensor([[4, 6, 11, 0, 0, 0]])
    torch.testing.assert_close(model(padded), model(ids))
    model(padded).sum().backward()
    assert model.embedding.weight.grad[0].abs().sum() == 0  # the <pad> row


def test_the_model_is_built_for_the_vocabulary(texts):
    model = build_model("bag_of_words", texts.input_shape, embedding_dim=6, bigram_buckets=10, hidden=[7])
    assert model.embedding.weight.shape == (len(texts.vocabulary) + 10, 6)
    assert model.out_features == 7
    assert model(texts.train.inputs[:4]).shape == (4, 7)
    all_unknown = torch.ones(2, 3, dtype=torch.long)  # <unk> <unk> <unk>: a bag like any other
    assert torch.isfinite(model(all_unknown)).all()


# ---------------------------------------------------------------- the task


def test_batches_group_similar_lengths_and_are_cut_to_the_longest(texts):
    task = TextClassification()
    order = task.epoch_order(texts.train, seed=3, epoch=1, batch_size=16)
    assert sorted(order.tolist()) == list(range(len(texts.train)))
    assert torch.equal(order, task.epoch_order(texts.train, seed=3, epoch=1, batch_size=16))
    assert not torch.equal(order, task.epoch_order(texts.train, seed=3, epoch=2, batch_size=16))
    index = order[:16]
    inputs, labels = task.batch(texts.train, index)
    assert inputs.shape == (16, int(texts.train.lengths[index].max()))
    assert torch.equal(labels, texts.train.labels[index])
    assert torch.equal(inputs, texts.train.inputs[index, : inputs.shape[1]])
    stacked, _ = task.batch(texts.train, torch.stack([order[:16], order[16:32]]))
    assert stacked.shape[:2] == (2, 16)
    # The one short batch goes last.
    lengths = [1] * 10
    assert length_grouped_order(lengths, 4, 0, 0).shape == (10,)


def test_macro_f1_by_hand_and_as_scikit_learn_has_it():
    labels = torch.tensor([0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0])
    # Class 0: 1 hit of 2 predicted and 2 present -> 2/4; class 1: 2 of 3 and 2 -> 4/5; class 2:
    # none -> 0; class 3 neither present nor predicted -> not counted.
    assert macro_f1(predictions, labels, num_classes=4) == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(predictions, labels, 4) == pytest.approx(
        100 * f1_score(labels, predictions, average="macro")
    )
    # A class predicted but absent counts 0.
    assert macro_f1(torch.tensor([3, 1]), torch.tensor([0, 1]), 4) == pytest.approx(100 * (0 + 1 + 0) / 3)
    assert macro_f1(labels, labels, 4) == pytest.approx(100.0)


def test_evaluation_reports_error_and_macro_f1_in_length_order(texts):
    torch.manual_seed(0)
    model = BagOfWords(texts.input_shape, embedding_dim=4, bigram_buckets=8)
    head = torch.nn.Linear(4, 3)

    def predict(ids: torch.Tensor) -> torch.Tensor:
        return head(model(ids))

    task = TextClassification(eval_batch_size=7)
    results = task.evaluate(predict, texts.dev, texts.test)
    assert list(results) == [
        "dev_macro_f1",
        "dev_error",
        *DEV_FIELDS,
        "test_macro_f1",
        "test_error",
        *CALIBRATION_FIELDS,
    ]
    with torch.no_grad():
        logits = head(model(texts.test.inputs))  # all at once, unsorted, uncut
    predictions = logits.argmax(-1)
    labels = texts.test.labels
    assert results["test_error"] == pytest.approx(100 * (predictions != labels).double().mean().item())
    assert results["test_macro_f1"] == pytest.approx(macro_f1(predictions, labels, 3))
    # The calibration of the test predictions, in the split's order whatever order they were made in.
    calibration = measure_calibration(logits, labels)
    assert results["test_ece"] == pytest.approx(calibration.ece, rel=1e-5)
    assert results["test_nll"] == pytest.approx(calibration.nll, rel=1e-5)
    assert results["test_calibration"]["counts"] == calibration.counts
    # Scaled by the temperature fit on the dev logits.
    with torch.no_grad():
        temperature = fit_temperature(head(model(texts.dev.inputs)), texts.dev.labels)
    assert results["temperature"] == pytest.approx(temperature, rel=1e-4)
    assert results["test_nll_scaled"] == pytest.approx(
        measure_calibration(logits / temperature, labels).nll, rel=1e-4
    )
    representation, source = task.label_representation(predict, texts.dev, texts.test, 3)
    assert representation.shape == (3, 3) and source == "mean softmax on dev"
    torch.testing.assert_close(representation.sum(1), torch.ones(3))


def test_selection_by_dev_error_or_by_dev_macro_f1(tmp_path, texts):
    # Check 1 has the lower dev error, check 2 the higher dev macro-F1.
    records = [
        {
            "step": 1,
            "epoch": 1.0,
            "dev_error": 10.0,
            "dev_macro_f1": 50.0,
            "test_error": 11.0,
            "test_macro_f1": 51.0,
        },
        {
            "step": 2,
            "epoch": 2.0,
            "dev_error": 12.0,
            "dev_macro_f1": 70.0,
            "test_error": 13.0,
            "test_macro_f1": 71.0,
        },
    ]
    progress = Progress(epoch=2, step=2, examples=2 * len(texts.train), records=records)
    selected = {}
    for metric in (None, "dev_error", "dev_macro_f1"):
        config = text_config(tmp_path, selection_metric=metric)
        task = build_task(config, texts)
        assert isinstance(task, TextClassification)
        summary = summarize(plan_run(config), progress, texts, task, torch.device("cpu"), 1)
        selected[metric] = summary["selected_step"]
        assert summary["reported_metrics"] == ["test_error", "test_macro_f1"]
        assert summary["metric"] == "test_error" and summary["higher_is_better"] is False
    assert selected == {None: 1, "dev_error": 1, "dev_macro_f1": 2}
    with pytest.raises(ValueError, match="use one of dev_error, dev_macro_f1, or null"):
        build_task(text_config(tmp_path, selection_metric="dev_bleu"), texts)


# ---------------------------------------------------------------- training


def methods_for_texts() -> list[str]:
    # label_embedding_fixed needs a finished label_embedding run: its own test.
    return [name for name in methods.serving("class") if name != "label_embedding_fixed"]


@pytest.mark.parametrize("method", methods_for_texts())
def test_every_method_trains_on_texts(tmp_path, texts, method):
    assert TextClassification.method_problem(method) is None
    # coteaching's forget rate is the noise rate a clean run has none of: given.
    needs = ("method.forget_rate=0.2",) if method == "coteaching" else ()
    config = text_config(tmp_path, f"method.name={method}", *needs, "model.hidden=[8]")
    summary = train(config, dataset=texts)
    run_dir = config.run_dir()
    records = read_metrics(run_dir)
    assert len(records) == 2 and records[-1]["step"] == 12
    for key in ("dev_error", "dev_macro_f1", "test_error", "test_macro_f1", "train_loss"):
        assert math.isfinite(records[-1][key]), f"{method}: {key} = {records[-1][key]}"
    assert 0 <= summary["selected_test_macro_f1"] <= 100
    assert summary["cut_texts"] == {"train": 0, "dev": 0, "test": 0}
    assert (run_dir / "vocabulary.txt").read_text().splitlines() == texts.vocabulary.tokens
    assert (run_dir / "label_representation.safetensors").is_file()


def test_a_bag_of_words_config_without_a_learning_rate_takes_the_one_that_trains_texts(tmp_path, texts):
    # docs/your-data.md's text example sets none: it trains at the backbone's rate, 10x Adam's 1e-3.
    page = (DOCS / "your-data.md").read_text()
    example = next(
        block for block in re.findall(r"```yaml\n(.*?)```", page, re.S) if "experiment: my-texts" in block
    )
    raw = yaml.safe_load(example)
    assert "lr" not in raw.get("train", {})
    config = build_config(raw)
    assert config.train.lr == BagOfWords.default_lr == 0.01
    assert config.model_dump(mode="json")["train"]["lr"] == 0.01  # the run folder's config.yaml says it
    assert build_config(raw, ["train.lr=0.001"]).train.lr == 0.001  # a rate given is the rate
    assert build_config({}).train.lr == 0.001  # the digits demo's MLP keeps Adam's
    # Five epochs of the tiny texts: the backbone's rate is well on its way (41.7 % test error),
    # Adam's 1e-3 still at the most frequent class's error or worse (70.8 %).
    errors = {}
    for name, lr in (("default", []), ("adam", ["train.lr=0.001"])):
        tiny = text_config(tmp_path / name, "train.epochs=5").model_dump(mode="json")
        del tiny["train"]["lr"]
        errors[name] = train(build_config(tiny, lr), dataset=texts)["selected_test_error"]
    assert errors["default"] < errors["adam"] - 20.0, errors


def test_a_fixed_label_embedding_from_a_text_run(tmp_path, texts):
    learned = text_config(tmp_path, "method.name=label_embedding")
    train(learned, dataset=texts)
    fixed = text_config(
        tmp_path, "method.name=label_embedding_fixed", f"method.embedding={learned.run_dir()}"
    )
    summary = train(fixed, dataset=texts)
    assert math.isfinite(summary["selected_test_error"])


def test_the_same_seed_gives_the_same_numbers(tmp_path, texts):
    runs = [text_config(tmp_path / name, "method.name=label_embedding", "seed=4") for name in ("a", "b")]
    for config in runs:
        train(config, dataset=texts)
    first, second = (config.run_dir() for config in runs)
    assert [untimed(r) for r in read_metrics(first)] == [untimed(r) for r in read_metrics(second)]
    weights = [torch.load(d / "model.pt", weights_only=True) for d in (first, second)]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(("method.name=onehot",), id="onehot"),
        pytest.param(("method.name=label_embedding", "model.hidden=[8]"), id="label_embedding-hidden"),
        pytest.param(("method.name=lwr", "method.k=1"), id="lwr"),
        pytest.param(("method.name=ols", "model.bigram_buckets=0"), id="ols-words-only"),
    ],
)
def test_batched_seeds_equal_runs_of_their_own(tmp_path, texts, overrides):
    batched = [text_config(tmp_path / "batched", *overrides, seed=s) for s in SEEDS]
    alone = [text_config(tmp_path / "alone", *overrides, seed=s) for s in SEEDS]
    summaries = train_batched(batched, dataset=texts)
    assert all(s["batched_seeds"] == len(SEEDS) for s in summaries)
    for config in alone:
        train(config, dataset=texts)
    one_example = 100.0 / len(texts.test) + 1e-9
    for got_config, want_config in zip(batched, alone):
        got, want = read_metrics(got_config.run_dir()), read_metrics(want_config.run_dir())
        assert [r["step"] for r in got] == [r["step"] for r in want]
        for g, w in zip(got, want):
            for key in ("dev_error", "test_error"):
                assert abs(g[key] - w[key]) <= one_example, f"step {w['step']} {key}: {g[key]} vs {w[key]}"
                f1 = key.replace("error", "macro_f1")
                if g[key] == w[key]:
                    assert g[f1] == pytest.approx(w[f1], abs=1e-9)
            for key in (k for k in w if k.startswith("train_") and k not in TIMING):
                assert math.isclose(g[key], w[key], rel_tol=1e-4, abs_tol=1e-6), (
                    f"{key}: {g[key]} vs {w[key]}"
                )
        got_weights = torch.load(got_config.run_dir() / "model.pt", weights_only=True)
        want_weights = torch.load(want_config.run_dir() / "model.pt", weights_only=True)
        assert got_weights.keys() == want_weights.keys()
        for key, value in want_weights.items():
            torch.testing.assert_close(got_weights[key], value, rtol=1e-4, atol=1e-5, msg=key)
