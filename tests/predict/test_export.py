"""labelemb export (issue 48): a bundle (safetensors, JSON, YAML) that labelemb.load reads without the
run folder, TorchScript and ONNX; each gives the run's class scores within 1e-5; an ONNX export of
an operation ONNX cannot express is refused naming it, writing nothing."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch

import labelemb
from labelemb.cli import main
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

TOLERANCE = 1e-5


def export(run: Path, fmt: str, output: Path, *extra: str) -> int:
    return main(["export", str(run), "--format", fmt, "--output", str(output), *extra])


@pytest.fixture
def digits_run(small_config):
    """A digits run whose evaluation normalises its images: the exports carry the normalisation."""
    config = small_config("data.augment.mean=[0.3]", "data.augment.std=[0.4]")
    train(config)
    return config.run_dir()


@pytest.fixture
def text_run(tmp_path):
    lines = ["text,label"] + [
        f'"{w} {w}s {i}",{c}' for i in range(12) for c, w in (("a", "cat"), ("b", "bus"))
    ]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    raw = {
        "experiment": "texts",
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "files", "dir": str(tmp_path), "files": {"train": "t.csv", "test": "t.csv"}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "label_embedding"},
        "train": {"epochs": 2, "batch_size": 6, "progress": False},
    }
    config = build_config(raw)
    train(config)
    return config.run_dir()


def test_a_bundle_is_read_without_the_run_folder(digits_run, digits, tmp_path):
    want = labelemb.load(digits_run)
    # The normalised run's own test error, from its predictions (the trainer's arithmetic).
    wrong = int((want.logits(digits.test).argmax(-1) != digits.test.labels).sum())
    summary = json.loads((digits_run / "summary.json").read_text())
    assert 100.0 * wrong / len(digits.test) == summary["selected_test_error"]
    assert export(digits_run, "bundle", tmp_path / "bundle") == 0
    files = {p.name for p in (tmp_path / "bundle").iterdir()}
    assert {"model.safetensors", "config.yaml", "bundle.json", "label_representation.safetensors"} <= files
    assert not any(name.endswith((".pt", ".pkl")) for name in files)  # nothing a pickle could run from
    described = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert described["class_names"] == want.classes and described["temperature"] == want.temperature
    shutil.move(str(digits_run.parent.parent.parent), str(tmp_path / "moved"))  # the run folder is gone
    got = labelemb.load(tmp_path / "bundle")
    inputs = digits.test.inputs[:50]
    assert torch.allclose(got.logits(inputs), want.logits(inputs), atol=TOLERANCE, rtol=0)
    assert got.temperature == want.temperature and got.classes == want.classes


def test_a_text_bundle_keeps_its_vocabulary(text_run, tmp_path):
    want = labelemb.load(text_run)
    assert export(text_run, "bundle", tmp_path / "bundle") == 0
    shutil.rmtree(text_run)
    texts = ["cat cats 3", "bus buses", "a dog"]
    assert torch.allclose(
        labelemb.load(tmp_path / "bundle").logits(texts), want.logits(texts), atol=TOLERANCE
    )


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_torchscript_and_onnx_give_the_runs_scores(digits_run, digits, tmp_path, fmt):
    predictor = labelemb.load(digits_run)
    assert export(digits_run, fmt, tmp_path / fmt) == 0
    inputs = digits.test.inputs[:40]
    want = predictor.logits(inputs)
    steps = json.loads((tmp_path / fmt / "preprocessing.json").read_text())
    assert steps["images"]["shape"] == ["batch", 1, 8, 8] and steps["temperature"] == predictor.temperature
    assert steps["images"]["normalisation_inside"] == {"mean": [0.3], "std": [0.4]}
    if fmt == "torchscript":
        with warnings.catch_warnings():  # torch.jit.load is deprecated in torch 2.13 (and still reads it)
            warnings.simplefilter("ignore", DeprecationWarning)
            got = torch.jit.load(str(tmp_path / fmt / "model.torchscript.pt"))(inputs)
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp_path / fmt / "model.onnx"))
        got = torch.from_numpy(session.run(None, {"inputs": inputs.numpy()})[0])
    assert torch.allclose(got, want, atol=TOLERANCE, rtol=0)


def test_a_frozen_backbone_travels_in_every_export(small_config, digits, tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    config = small_config("model.freeze=true", "train.lr=0.01", "model.dense=16")
    train(config)
    predictor = labelemb.load(config.run_dir())
    inputs = digits.test.inputs[:30]
    want = predictor.logits(inputs)
    for fmt in ("bundle", "torchscript", "onnx"):
        assert export(config.run_dir(), fmt, tmp_path / fmt) == 0
    bundle = labelemb.load(tmp_path / "bundle")
    assert any(name.startswith("backbone.") for name in bundle.model.state_dict())
    assert torch.allclose(bundle.logits(inputs), want, atol=TOLERANCE, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.load(str(tmp_path / "torchscript" / "model.torchscript.pt"))
    assert torch.allclose(traced(inputs), want, atol=TOLERANCE, rtol=0)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    got = torch.from_numpy(session.run(None, {"inputs": inputs.numpy()})[0])
    assert torch.allclose(got, want, atol=TOLERANCE, rtol=0)


def test_onnx_of_a_text_run_reads_word_ids(text_run, tmp_path):
    import onnxruntime

    from labelemb.predict.inputs import text_split

    predictor = labelemb.load(text_run)
    assert export(text_run, "onnx", tmp_path / "onnx") == 0
    ids = text_split(["cat cats 3", "bus buses 1 2"], predictor.trained).inputs
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    got = torch.from_numpy(session.run(None, {"inputs": ids.numpy()})[0])
    assert torch.allclose(got, predictor.model(ids), atol=TOLERANCE, rtol=0)
    assert (tmp_path / "onnx" / "vocabulary.txt").is_file()


LGAMMA_MODULE = """
import torch
from torch import nn


class Lgamma(nn.Module):
    def forward(self, images):
        return torch.lgamma(images.flatten(1) + 1.0)


def net() -> nn.Module:
    return Lgamma()
"""


def test_onnx_of_an_operation_onnx_lacks_is_refused_naming_it(small_config, tmp_path, capsys, monkeypatch):
    (tmp_path / "lgamma_backbone.py").write_text(LGAMMA_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = small_config("method.name=onehot", model={"name": "custom", "factory": "lgamma_backbone:net"})
    train(config)
    assert export(config.run_dir(), "onnx", tmp_path / "onnx") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ONNX cannot express this network" in err and "aten::lgamma" in err
    assert not (tmp_path / "onnx").exists()
    sys.modules.pop("lgamma_backbone", None)


def test_a_bundle_of_another_format_and_an_existing_output_are_refused(digits_run, tmp_path, capsys):
    assert export(digits_run, "bundle", tmp_path / "bundle") == 0
    assert export(digits_run, "bundle", tmp_path / "bundle") == 2
    assert "exists; choose another --output" in capsys.readouterr().err
    description = tmp_path / "bundle" / "bundle.json"
    description.write_text(description.read_text().replace('"format": 1', '"format": 99'))
    assert (
        main(["predict", str(tmp_path / "bundle"), "--split", "test", "--output", str(tmp_path / "o.csv")])
        == 2
    )
    err = capsys.readouterr().err
    assert "bundle of format 99" in err and not (tmp_path / "o.csv").exists()
