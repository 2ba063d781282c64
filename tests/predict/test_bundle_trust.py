"""A bundle from someone else is data (issue 56): its custom backbone factory runs only when the
user trusts that factory by name, every file it names stays inside its folder, every value of its
bundle.json is checked, and each refusal is one line (exit 2) that runs, imports and reads nothing
it refuses; a run folder's pickle that holds more than tensors is refused in one line too."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import labelemb
from labelemb.cli import main
from labelemb.config import RunConfig
from labelemb.data.files.options import FilesOptions
from labelemb.methods.tensor_files import read_tensor_file
from labelemb.predict import PredictError
from labelemb.predict.bundle_config import portable_config
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_BACKBONE = """
from torch import nn


def net(width: int = 16) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU())
"""
#: A factory module whose import alone leaves a mark: it must never be imported untrusted.
MARKING_MODULE = """
from pathlib import Path

Path({mark!r}).write_text("imported")


def net():
    raise AssertionError("called")
"""


class RunsCode:
    """Pickled as a call of os.system: loading it with a plain unpickler would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def predict_with(bundle: Path, out: Path, *extra: str) -> int:
    images = out.parent / "images.npz"
    if not images.exists():
        np.savez(images, x=np.random.default_rng(0).random((4, 8, 8), dtype=np.float32))
    return main(
        ["predict", str(bundle), "--input", str(images), "--output", str(out), "--no-progress", *extra]
    )


def refusal(capsys: Any, bundle: Path, out: Path, *extra: str) -> str:
    """The one error line of a predict that must fail; nothing written."""
    assert predict_with(bundle, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("labelemb predict: error: ") and not out.exists()
    return err


def tampered(
    bundle: Path,
    folder: Path,
    description: Callable[[dict[str, Any]], None] | None = None,
    config: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """A copy of ``bundle`` in ``folder`` with its bundle.json and config.yaml edited in place."""
    shutil.copytree(bundle, folder)
    for name, edit, read, write in (
        ("bundle.json", description, json.loads, json.dumps),
        ("config.yaml", config, yaml.safe_load, yaml.safe_dump),
    ):
        if edit is not None:
            values = read((folder / name).read_text())
            edit(values)
            (folder / name).write_text(write(values))
    return folder


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory) -> Path:
    """A bundle of a small digits run (label_embedding: it has a label representation)."""
    root = tmp_path_factory.mktemp("digits")
    raw = {
        "experiment": "small",
        "output_dir": str(root / "runs"),
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 1, "batch_size": 100, "progress": False},
    }
    config = build_config(raw)
    train(config)
    assert main(["export", str(config.run_dir()), "--output", str(root / "bundle")]) == 0
    return root / "bundle"


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory) -> Path:
    """A bundle of a bag-of-words run on a CSV named by its absolute path."""
    root = tmp_path_factory.mktemp("texts")
    lines = ["text,label"] + [
        f'"{w} {w}s {i}",{c}' for i in range(8) for c, w in (("a", "cat"), ("b", "bus"))
    ]
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    table = str(root / "t.csv")
    raw = {
        "experiment": "texts",
        "output_dir": str(root / "runs"),
        "data": {"name": "files", "dir": str(root), "files": {"train": table, "test": table}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 4, "progress": False},
    }
    config = build_config(raw)
    train(config)
    assert main(["export", str(config.run_dir()), "--output", str(root / "bundle")]) == 0
    return root / "bundle"


# ---------------------------------------------------------------- a custom backbone's factory


def test_an_untrusted_factory_is_refused_before_it_runs(digits_bundle, tmp_path, capsys):
    mark = tmp_path / "MARK"
    command = {"name": "custom", "factory": "os:system", "options": {"command": f"touch {mark}"}}
    bundle = tampered(digits_bundle, tmp_path / "b", config=lambda c: c.update(model=command))
    err = refusal(capsys, bundle, tmp_path / "o.csv")
    assert "custom factory 'os:system'" in err and "--trust-factory os:system" in err
    err = refusal(capsys, bundle, tmp_path / "o.csv", "--trust-factory", "mine.nets:small")
    assert "you trusted 'mine.nets:small'" in err and "--trust-factory os:system" in err
    with pytest.raises(PredictError, match="trust_factory='os:system'"):
        labelemb.load(bundle)
    assert not mark.exists()


def test_an_untrusted_factory_module_is_never_imported(digits_bundle, tmp_path, capsys, monkeypatch):
    mark = tmp_path / "imported"
    (tmp_path / "marking_backbone.py").write_text(MARKING_MODULE.format(mark=str(mark)))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = {"name": "custom", "factory": "marking_backbone:net"}
    bundle = tampered(digits_bundle, tmp_path / "b", config=lambda c: c.update(model=model))
    assert "marking_backbone:net" in refusal(capsys, bundle, tmp_path / "o.csv")
    assert not mark.exists() and "marking_backbone" not in sys.modules


def test_a_trusted_factory_loads_and_a_run_folder_needs_no_trust(small_config, digits, tmp_path, monkeypatch):
    (tmp_path / "tiny_backbone.py").write_text(TINY_BACKBONE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = small_config("method.name=onehot", model={"name": "custom", "factory": "tiny_backbone:net"})
    train(config)
    want = labelemb.load(config.run_dir())  # the user's own run: no trust asked
    assert main(["export", str(config.run_dir()), "--output", str(tmp_path / "bundle")]) == 0
    with pytest.raises(PredictError, match="--trust-factory tiny_backbone:net"):
        labelemb.load(tmp_path / "bundle")
    got = labelemb.load(tmp_path / "bundle", trust_factory="tiny_backbone:net")
    inputs = digits.test.inputs[:20]
    assert torch.allclose(got.logits(inputs), want.logits(inputs), atol=1e-6, rtol=0)
    # The bundle's folder is not on the import path: a module inside it is not what is trusted.
    shutil.copyfile(tmp_path / "tiny_backbone.py", tmp_path / "bundle" / "bundled_net.py")
    inside = tampered(
        tmp_path / "bundle",
        tmp_path / "inside",
        config=lambda c: c["model"].update(factory="bundled_net:net"),
    )
    with pytest.raises(PredictError, match="there is no module 'bundled_net'"):
        labelemb.load(inside, trust_factory="bundled_net:net")
    again = ["export", str(tmp_path / "bundle"), "--output", str(tmp_path / "again")]
    assert main(again) == 2 and main([*again, "--trust-factory", "tiny_backbone:net"]) == 0
    assert predict_with(tmp_path / "again", tmp_path / "o.csv", "--trust-factory", "tiny_backbone:net") == 0
    sys.modules.pop("tiny_backbone", None)


# ---------------------------------------------------------------- what else a config names


@pytest.mark.parametrize(
    ("section", "options", "said"),
    [
        (
            "model",
            {"name": "sentence_encoder", "encoder": "{folder}"},
            "model.encoder '{folder}' is not a text",
        ),
        (
            "method",
            {"name": "static_label", "encoder": "{folder}"},
            "method.encoder '{folder}' is not a text",
        ),
        (
            "method",
            {"name": "label_embedding_fixed", "embedding": "../e.safetensors"},
            "its method.embedding '../e.safetensors' lies outside the bundle",
        ),
        (
            "method",
            {"name": "static_label", "vectors": "/etc/passwd"},
            "its method.vectors '/etc/passwd' lies outside",
        ),
    ],
)
def test_encoders_and_option_files_a_bundle_names(digits_bundle, tmp_path, capsys, section, options, said):
    options = {key: value.format(folder=tmp_path) for key, value in options.items()}
    bundle = tampered(digits_bundle, tmp_path / "b", config=lambda c: c.update({section: options}))
    assert said.format(folder=tmp_path) in refusal(capsys, bundle, tmp_path / "o.csv")


def test_a_file_a_method_names_travels_inside_the_bundle(digits_bundle, small_config, digits, tmp_path):
    embedding = digits_bundle / "label_representation.safetensors"
    config = small_config(
        model={"name": "mlp", "hidden": [16]},
        method={"name": "label_embedding_fixed", "embedding": str(embedding)},
    )
    train(config)
    want = labelemb.load(config.run_dir())
    assert main(["export", str(config.run_dir()), "--output", str(tmp_path / "bundle")]) == 0
    written = yaml.safe_load((tmp_path / "bundle" / "config.yaml").read_text())
    assert written["method"]["embedding"] == "method.embedding.safetensors"
    shutil.move(str(tmp_path / "bundle"), str(tmp_path / "moved"))
    inputs = digits.test.inputs[:20]
    assert torch.allclose(labelemb.load(tmp_path / "moved").logits(inputs), want.logits(inputs), atol=1e-6)


def test_data_files_stay_in_the_users_data_folder(text_bundle, tmp_path, capsys):
    written = yaml.safe_load((text_bundle / "config.yaml").read_text())
    assert written["data"]["dir"] is None and written["data"]["files"]["test"] == "t.csv"
    split = ["predict", str(text_bundle), "--split", "test", "--output", str(tmp_path / "o.csv")]
    assert main([*split, "--data-dir", str(text_bundle.parent), "--no-progress"]) == 0
    for name in ("/etc/passwd", "../../etc/passwd", "~/secret.csv"):
        edit = lambda c, name=name: c["data"]["files"].update(test=name)  # noqa: E731
        bundle = tampered(text_bundle, tmp_path / name.replace("/", "_"), config=edit)
        with pytest.raises(PredictError, match="data.files.test .* leaves the folder data is looked for in"):
            labelemb.load(bundle)
    bundle = tampered(text_bundle, tmp_path / "s", config=lambda c: c.update(source_folder=str(tmp_path)))
    with pytest.raises(PredictError, match="source_folder is not a key of a bundle's config"):
        labelemb.load(bundle)
    elsewhere = {"dir": str(tmp_path), "files": {**written["data"]["files"], "cache_dir": str(tmp_path)}}
    bundle = tampered(text_bundle, tmp_path / "d", config=lambda c: c["data"].update(elsewhere))
    config = labelemb.load(bundle).trained.config
    assert config.data.dir is None and config.section(FilesOptions).cache_dir is None


def test_a_run_whose_encoder_is_a_folder_exports_no_bundle(tmp_path):
    config = RunConfig.model_validate({"model": {"name": "sentence_encoder", "encoder": str(tmp_path)}})
    with pytest.raises(
        PredictError, match="cannot export model.encoder .* is not a text encoder labelemb knows"
    ):
        portable_config(config, tmp_path)


# ---------------------------------------------------------------- files a bundle names


@pytest.mark.parametrize("outside", ["../outside.txt", "../../../etc/passwd", "/etc/passwd", "link"])
@pytest.mark.parametrize("field", ["vocabulary", "label_representation", "pair_vocabularies"])
def test_a_file_outside_the_bundle_is_refused(digits_bundle, tmp_path, capsys, field, outside):
    (tmp_path / "outside.txt").write_text("a\nb\n")
    bundle = tmp_path / "in" / "b"
    bundle.parent.mkdir()
    named = [outside, outside] if field == "pair_vocabularies" else outside
    tampered(digits_bundle, bundle, description=lambda d: d.update({field: named}))
    if outside == "link":
        (bundle / "link").symlink_to(tmp_path / "outside.txt")
    err = refusal(capsys, bundle, tmp_path / "o.csv")
    assert f"its {field} {outside!r} lies outside the bundle" in err


def test_a_weights_file_linked_from_outside_is_refused(digits_bundle, tmp_path, capsys):
    bundle = tampered(digits_bundle, tmp_path / "b")
    shutil.move(str(bundle / "model.safetensors"), str(tmp_path / "weights.safetensors"))
    (bundle / "model.safetensors").symlink_to(tmp_path / "weights.safetensors")
    assert "its weights 'model.safetensors' lies outside" in refusal(capsys, bundle, tmp_path / "o.csv")


@pytest.mark.parametrize("change", [["extra"], []])
def test_a_vocabulary_that_does_not_fit_the_network_is_refused(text_bundle, tmp_path, change):
    bundle = tampered(text_bundle, tmp_path / "b")
    tokens = (bundle / "vocabulary.txt").read_text().splitlines()
    tokens = tokens + change if change else tokens[:-1]
    (bundle / "vocabulary.txt").write_text("\n".join(tokens) + "\n")
    shape = json.loads((bundle / "bundle.json").read_text())["input_shape"]
    with pytest.raises(PredictError, match=rf"vocabulary holds {len(tokens)} tokens, .* shape \{shape}"):
        labelemb.load(bundle)


# ---------------------------------------------------------------- the values of bundle.json


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("temperature", 0, "temperature must be a finite number above 0"),
        ("temperature", -1.0, "temperature must be a finite number above 0"),
        ("temperature", "hot", "temperature must be a finite number above 0"),
        ("temperature", float("nan"), "temperature must be a finite number above 0"),
        ("class_names", ["zero"] * 10, "class_names must be a list of distinct names"),
        ("input_shape", [1, 0, 8], "input_shape must be a list of positive whole numbers"),
        ("step", -3, "step must be a whole number"),
        ("train_examples", "many", "train_examples must be a whole number"),
        ("checkpoint", "best", "checkpoint must be selected or last"),
        ("hidden", 1, "hidden is not a field of a bundle description"),
    ],
)
def test_a_changed_value_is_refused_naming_its_field(digits_bundle, tmp_path, capsys, field, value, said):
    bundle = tampered(digits_bundle, tmp_path / "b", description=lambda d: d.update({field: value}))
    err = refusal(capsys, bundle, tmp_path / "o.csv")
    assert f"{bundle / 'bundle.json'}: {said}" in err and "export it again from its run" in err


def test_class_names_that_do_not_fit_the_network_are_refused(digits_bundle, tmp_path, capsys):
    edit = lambda d: d.update(class_names=d["class_names"][:9])  # noqa: E731
    bundle = tampered(digits_bundle, tmp_path / "b", description=edit)
    assert "builds for 9 classes" in refusal(capsys, bundle, tmp_path / "o.csv")


def test_a_truncated_label_representation_is_refused(digits_bundle, tmp_path, capsys):
    bundle = tampered(digits_bundle, tmp_path / "b")
    torn = bundle / "label_representation.safetensors"
    torn.write_bytes(torn.read_bytes()[:40])
    assert f"cannot read {torn}" in refusal(capsys, bundle, tmp_path / "o.csv")


# ---------------------------------------------------------------- pickles that would run code


def test_a_pickle_that_runs_code_is_refused_in_one_line(small_config, tmp_path, capsys):
    config = small_config("method.name=onehot")
    train(config)
    mark = tmp_path / "MARK"
    for name in ("model.pt", "model.selected.pt"):
        torch.save({"weights": RunsCode(f"touch {mark}")}, config.run_dir() / name)
    err = refusal(capsys, config.run_dir(), tmp_path / "o.csv")
    assert "could run code" in err and "weights_only" not in err and not mark.exists()
    torch.save(RunsCode(f"touch {mark}"), tmp_path / "vectors.pt")
    with pytest.raises(ValueError, match="could run code") as error:
        read_tensor_file(tmp_path / "vectors.pt", "vectors")
    assert "\n" not in str(error.value) and "weights_only" not in str(error.value) and not mark.exists()


def test_the_noise_ood_and_disputed_files_a_run_named_stay_out_of_its_bundle(digits_bundle, tmp_path):
    import numpy as np

    np.save(tmp_path / "flips.npy", np.full((10, 10), 0.02) + 0.8 * np.eye(10))
    (tmp_path / "disputed.txt").write_text("3\n7\n")
    raw = {
        "experiment": "noisy",
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 1, "batch_size": 100, "progress": False},
        "noise": {"kind": "matrix", "matrix": str(tmp_path / "flips.npy")},
        "disputed_test_labels": str(tmp_path / "disputed.txt"),
    }
    config = build_config(raw)
    train(config)
    assert main(["export", str(config.run_dir()), "--output", str(tmp_path / "bundle")]) == 0
    written = yaml.safe_load((tmp_path / "bundle" / "config.yaml").read_text())
    assert written["noise"]["matrix"] == "flips.npy" and written["disputed_test_labels"] == "disputed.txt"
    assert str(tmp_path) not in (tmp_path / "bundle" / "config.yaml").read_text()
    for change in (
        lambda c: c.update(disputed_test_labels="/etc/passwd"),
        lambda c: c.update(ood=[{"path": "../../etc/passwd"}]),
    ):
        bundle = tampered(digits_bundle, tmp_path / f"t{id(change)}", config=change)
        with pytest.raises(PredictError, match="leaves the folder data is looked for in"):
            labelemb.load(bundle)
