"""A frozen backbone (model.freeze): features computed once per split, cached (safetensors, atomic,
keyed by weights, data and preprocessing), and only the head trained on them; a dense layer
(model.dense) between any backbone and the head."""

from __future__ import annotations

import json
import math
import multiprocessing
import time
import warnings
from pathlib import Path

import pytest
import torch
from helpers.batched_checks import train_batched
from torch import nn

from labelemb import methods
from labelemb.assembly.build import build_network, parameter_groups
from labelemb.assembly.frozen import FeatureDataset, freeze_features, frozen_backbone
from labelemb.config import ConfigError
from labelemb.data import Split
from labelemb.data.feature_cache import (
    backbone_digest,
    cached_features,
    read_features,
    split_key,
    write_features,
)
from labelemb.data.text.classes import text_class_dataset
from labelemb.models import FeatureHead, WithDense
from labelemb.tasks import build_task
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (0, 1, 2)
TIMING = {"wall_seconds", "train_seconds", "seconds_per_epoch"}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache folder for this test ($LABELEMB_CACHE): features never leak between tests."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LABELEMB_CACHE", str(folder))
    return folder


def frozen_config(small_config, *overrides: str, **top_level):
    """The small digits MLP run, its MLP frozen (random weights drawn with seed 0)."""
    return small_config("model.freeze=true", "train.lr=0.01", *overrides, **top_level)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


# ---------------------------------------------------------------- the cache file


def test_features_are_computed_once_then_read(tmp_path):
    calls = []
    features = torch.randn(5, 3)

    def compute():
        calls.append(1)
        return features

    first, reused_first = cached_features(tmp_path, "ab" * 32, 5, compute, progress=False)
    second, reused_second = cached_features(tmp_path, "ab" * 32, 5, compute, progress=False)
    assert calls == [1] and (reused_first, reused_second) == (False, True)
    assert torch.equal(first, features) and torch.equal(second, features)
    assert [p.name for p in tmp_path.glob("*.safetensors")] == [f"features-{'ab' * 16}.safetensors"]


def test_features_read_from_the_cache_multiply_like_the_computed_ones(tmp_path):
    # safetensors hands back a view of the file's bytes, 8 bytes past a 64-byte boundary here; on an
    # AVX-512 EPYC a matrix product over such memory rounds differently, so a seed's cached run
    # drifted from its computing run in the 9th digit of its test NLL.
    features = torch.randn(300, 32)
    weight = torch.randn(10, 32)
    cached_features(tmp_path, "cd" * 32, 300, lambda: features, progress=False)
    read, reused = cached_features(tmp_path, "cd" * 32, 300, lambda: features, progress=False)
    assert reused and read.data_ptr() % 64 == 0
    assert torch.equal(read @ weight.T, features @ weight.T)


def test_the_key_covers_weights_description_and_inputs():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    description = {"model": "mlp", "options": {"hidden": [3]}}
    inputs = [torch.arange(8.0).reshape(2, 4)]
    key = split_key(backbone_digest(description, layer.state_dict()), inputs)
    assert key == split_key(backbone_digest(description, layer.state_dict()), [inputs[0].clone()])
    changed_weight = {k: v.clone() for k, v in layer.state_dict().items()}
    changed_weight["weight"][0, 0] += 1e-6
    changed_inputs = [inputs[0].clone()]
    changed_inputs[0][1, 3] = 0.5
    others = {
        split_key(backbone_digest(description, changed_weight), inputs),
        split_key(backbone_digest({**description, "normalise": [[0.5], [0.2]]}, layer.state_dict()), inputs),
        split_key(backbone_digest(description, layer.state_dict()), changed_inputs),
        split_key(backbone_digest(description, layer.state_dict()), [inputs[0].double()]),
    }
    assert key not in others and len(others) == 4


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "other key", "not safetensors"])
def test_a_damaged_or_foreign_cache_is_rebuilt_never_read(tmp_path, damage):
    key, features = "cd" * 32, torch.randn(6, 4)
    cached_features(tmp_path, key, 6, lambda: features, progress=False)
    (path,) = tmp_path.glob("*.safetensors")
    blob = bytearray(path.read_bytes())
    if damage == "flipped byte":
        blob[-3] ^= 0x40
    elif damage == "truncated":
        blob = blob[:-10]
    elif damage == "not safetensors":
        blob = bytearray(b"garbage" * 10)
    if damage == "other key":
        write_features(path, "ef" * 32, torch.randn(6, 4))  # another cache's file under this name
    else:
        path.write_bytes(bytes(blob))
    assert read_features(path, key, 6)[0] is None
    fresh = torch.randn(6, 4)
    with pytest.warns(UserWarning, match="feature cache .* computing the"):
        got, reused = cached_features(tmp_path, key, 6, lambda: fresh, progress=False)
    assert not reused and torch.equal(got, fresh)
    assert torch.equal(read_features(path, key, 6)[0], fresh)


def test_a_killed_build_leaves_no_cache_and_its_leftover_is_removed(tmp_path):
    key = "12" * 32

    def killed():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_features(tmp_path, key, 2, killed, progress=False)
    assert not list(tmp_path.glob("*.safetensors"))
    path = tmp_path / f"features-{key[:32]}.safetensors"
    leftover = tmp_path / f".{path.name}.999.abcd.tmp"  # a build killed while writing
    leftover.write_bytes(b"half")
    cached_features(tmp_path, key, 2, lambda: torch.ones(2, 2), progress=False)
    assert not leftover.exists() and path.is_file()


def _build_in_process(folder: str, counter: str) -> None:
    def compute():
        with open(counter, "a") as handle:
            handle.write("built\n")
        time.sleep(0.5)  # the other process arrives while this one builds
        return torch.arange(12.0).reshape(4, 3)

    features, _ = cached_features(Path(folder), "34" * 32, 4, compute, progress=False)
    assert torch.equal(features, torch.arange(12.0).reshape(4, 3))


def test_two_processes_build_one_cache_once(tmp_path):
    counter = tmp_path / "counter.txt"
    context = multiprocessing.get_context("fork")
    arguments = (str(tmp_path), str(counter))
    processes = [context.Process(target=_build_in_process, args=arguments) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    assert counter.read_text() == "built\n"


# ---------------------------------------------------------------- a frozen run


def test_a_frozen_run_trains_only_the_head_on_the_backbones_eval_features(small_config, digits, cache):
    config = frozen_config(small_config)
    summary = train(config, dataset=digits)
    weights = torch.load(config.run_dir() / "model.pt", weights_only=True)
    assert not any(key.startswith("model.") for key in weights)  # the MLP is not in the run
    assert summary["data"]["frozen"]["features"] == 32
    assert {s["reused"] for s in summary["data"]["frozen"]["splits"].values()} == {False}
    # The cached features are the MLP's own, drawn with seed 0 whatever the run's seed.
    backbone = frozen_backbone(config, digits).eval()
    frozen = freeze_features(config, digits, build_task(config, digits), torch.device("cpu"))
    with torch.no_grad():
        for name in ("train", "dev", "test"):
            torch.testing.assert_close(getattr(frozen, name).inputs, backbone(getattr(digits, name).inputs))
    assert all(not p.requires_grad for p in backbone.parameters())
    assert 0 <= summary["selected_test_error"] < 50  # random ReLU features of digits are separable


def test_another_seed_or_method_reads_the_cache_and_a_seed_repeats_its_numbers(
    small_config, digits, cache, tmp_path
):
    first = frozen_config(small_config, seed=3)
    train(first, dataset=digits)
    other_method = frozen_config(small_config, "method.name=onehot", seed=4)
    summary = train(other_method, dataset=digits)
    assert {s["reused"] for s in summary["data"]["frozen"]["splits"].values()} == {True}
    again = frozen_config(small_config, seed=3, output_dir=tmp_path / "again")
    train(again, dataset=digits)
    assert untimed(read_metrics(first.run_dir())) == untimed(read_metrics(again.run_dir()))
    assert len(list(cache.glob("features/*.safetensors"))) == 3  # train, dev and test, built once


def test_another_backbone_builds_its_own_cache(small_config, digits, cache):
    train(frozen_config(small_config), dataset=digits)
    train(frozen_config(small_config, "model.hidden=[16]", experiment="narrower"), dataset=digits)
    train(frozen_config(small_config, "model.init_std=0.2", experiment="wider_init"), dataset=digits)
    assert len(list(cache.glob("features/*.safetensors"))) == 9


def methods_for_frozen() -> list[str]:
    # label_embedding_fixed needs a finished label_embedding run: covered by its own tests.
    return [name for name in methods.serving("class") if name != "label_embedding_fixed"]


@pytest.mark.parametrize("method", methods_for_frozen())
def test_every_method_trains_on_frozen_features(small_config, digits, cache, method):
    # coteaching's forget rate is the noise rate a clean run has none of: given.
    needs = ("method.forget_rate=0.2",) if method == "coteaching" else ()
    config = frozen_config(
        small_config, f"method.name={method}", *needs, "model.dense=16", "train.max_steps=4"
    )
    summary = train(config, dataset=digits)
    records = read_metrics(config.run_dir())
    assert records[-1]["step"] == 4 and math.isfinite(records[-1]["train_loss"])
    assert 0 <= summary["selected_test_error"] <= 100


@pytest.mark.parametrize("dense", [None, 16])
def test_frozen_seeds_train_batched_with_the_numbers_of_runs_of_their_own(
    small_config, digits, cache, tmp_path, dense
):
    extra = () if dense is None else (f"model.dense={dense}",)
    batched = [frozen_config(small_config, *extra, output_dir=tmp_path / "b", seed=s) for s in SEEDS]
    alone = [frozen_config(small_config, *extra, output_dir=tmp_path / "a", seed=s) for s in SEEDS]
    summaries = train_batched(batched, dataset=digits)
    assert all(s["batched_seeds"] == len(SEEDS) for s in summaries)
    for config in alone:
        train(config, dataset=digits)
    for got, want in zip(batched, alone):
        for g, w in zip(read_metrics(got.run_dir()), read_metrics(want.run_dir())):
            assert abs(g["test_error"] - w["test_error"]) <= 100 / len(digits.test) + 1e-9
            assert g["train_loss"] == pytest.approx(w["train_loss"], rel=1e-4, abs=1e-6)


def test_frozen_texts_keep_the_text_tasks_metrics(tmp_path, cache):
    words = [["apple", "pear"], ["perl", "ruby"], ["gnome", "kde"]]
    generator = torch.Generator().manual_seed(0)

    def split(count):
        labels = torch.randint(0, 3, (count,), generator=generator)
        texts = [" ".join(words[int(c)] * int(1 + i % 4)) for i, c in enumerate(labels)]
        return texts, labels.numpy()

    parts = {"train": split(60), "dev": split(20), "test": split(20)}
    texts = text_class_dataset(
        "tiny", {k: t for k, (t, _) in parts.items()}, {k: y for k, (_, y) in parts.items()}, ["a", "b", "c"]
    )
    config = build_config(
        {
            "experiment": "texts",
            "output_dir": str(tmp_path / "runs"),
            "data": {"name": "files", "files": {"format": "csv", "train": "train.csv", "test": "test.csv"}},
            "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 0, "freeze": True},
            "method": {"name": "label_embedding"},
            "train": {"epochs": 2, "batch_size": 16, "progress": False, "lr": 0.05},
        }
    )
    summary = train(config, dataset=texts)
    assert {"selected_test_error", "selected_test_macro_f1"} <= set(summary)
    assert summary["data"]["frozen"]["features"] == 8
    # The bag of words's features of each text, in the split's order (evaluation reads by length).
    frozen = freeze_features(config, texts, build_task(config, texts), torch.device("cpu"))
    backbone = frozen_backbone(config, texts).eval()
    with torch.no_grad():
        rows = [texts.test.inputs[i : i + 1, : max(int(n), 1)] for i, n in enumerate(texts.test.lengths)]
        want = torch.cat([backbone(row) for row in rows])
    torch.testing.assert_close(frozen.test.inputs, want)


# ---------------------------------------------------------------- the dense layer


def test_a_dense_layer_sits_between_any_backbone_and_the_head(small_config, digits):
    config = small_config("model.dense=24", "model.lr_scale=0.1")
    model, method = build_network(config, digits)
    assert isinstance(model, WithDense) and model.out_features == 24
    assert method.logits(torch.zeros(2, 24)).shape == (2, 10)  # the head reads the dense layer
    features = model(digits.train.inputs[:5])
    assert features.shape == (5, 24) and bool((features >= 0).all())
    named = [(f"model.{n}", p) for n, p in model.named_parameters()] + [
        (f"method.{n}", p) for n, p in method.named_parameters()
    ]
    backbone, head = parameter_groups(config, named)
    assert backbone["lr"] == pytest.approx(config.train.lr * 0.1)
    backbone_ids = {id(p) for p in backbone["params"]}
    assert {id(p) for p in model.backbone.parameters()} == backbone_ids
    assert {id(p) for p in model.dense.parameters()} <= {id(p) for p in head["params"]}


def test_the_feature_head_is_a_flatten_or_one_dense_layer():
    assert [type(m) for m in FeatureHead((7,)).layers] == [nn.Flatten]
    head = FeatureHead((7,), dense=5)
    assert [type(m) for m in head.layers] == [nn.Flatten, nn.Linear, nn.ReLU] and head.out_features == 5
    with pytest.raises(ValueError, match="features"):
        FeatureHead((1, 8, 8))


def test_feature_splits_must_be_float_rows():
    labels = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="float32"):
        images, rows = Split(torch.zeros(3, 1, 2, 2), labels), Split(torch.zeros(3, 4), labels)
        FeatureDataset("x", images, None, rows, ["a"])


# ---------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.lr=0.0001",), "model.freeze keeps it fixed"),
        (("data.augment.flip=true",), "crop_padding / flip"),
        (("train.compile=true",), "frozen one does not train"),
        (("model.dense=0",), "model.dense"),
    ],
)
def test_configs_a_frozen_backbone_cannot_honour_are_refused(small_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        frozen_config(small_config, *overrides)


def test_freezing_a_sequence_model_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.freeze trains a classifier on fixed features"):
        build_config(
            {
                "output_dir": str(tmp_path),
                "data": {"name": "iwslt15-en-vi"},
                "model": {"name": "seq2seq", "freeze": True},
                "method": {"name": "onehot"},
            }
        )


def test_a_frozen_run_warns_once_on_a_damaged_cache_and_gives_the_same_numbers(
    small_config, digits, cache, tmp_path
):
    first = frozen_config(small_config)
    train(first, dataset=digits)
    for path in cache.glob("features/*.safetensors"):
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 0x01
        path.write_bytes(bytes(blob))
    again = frozen_config(small_config, output_dir=tmp_path / "again")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train(again, dataset=digits)
    assert sum("feature cache" in str(w.message) for w in caught) == 3
    assert {s["reused"] for s in summary["data"]["frozen"]["splits"].values()} == {False}
    assert untimed(read_metrics(first.run_dir())) == untimed(read_metrics(again.run_dir()))


# ---------------------------------------------------------------- a pretrained backbone, frozen


def test_pretrained_efficientnet_frozen_trains_its_head_and_reuses_its_features(tmp_path, cache, digits):
    def config(method: str, *overrides: str):
        return build_config(
            {
                "experiment": f"frozen-{method}",
                "output_dir": str(tmp_path / "runs"),
                "data": {"name": "digits", "max_train_pairs": 60},
                "model": {"name": "efficientnet_lite0", "freeze": True},
                "method": {"name": method},
                "train": {"epochs": 2, "batch_size": 20, "progress": False, "eval_batch_size": 200},
            },
            list(overrides),
        )

    first = train(config("onehot"), dataset=digits)
    second = train(config("label_embedding"), dataset=digits)
    assert first["data"]["frozen"]["features"] == 1280
    assert {s["reused"] for s in first["data"]["frozen"]["splits"].values()} == {False}
    assert {s["reused"] for s in second["data"]["frozen"]["splits"].values()} == {True}
    for summary in (first, second):
        assert 0 <= summary["selected_test_error"] <= 100
    weights = torch.load(config("onehot").run_dir() / "model.pt", weights_only=True)
    assert sorted(weights) == ["method.output.bias", "method.output.weight"]  # the head alone
    assert weights["method.output.weight"].shape == (10, 1280)
    random_weights = train(config("onehot", "model.pretrained=false", "experiment=random"), dataset=digits)
    assert {s["reused"] for s in random_weights["data"]["frozen"]["splits"].values()} == {False}
    assert len(list(cache.glob("features/*.safetensors"))) == 6
