"""``labelemb export`` and ``labelemb.export``: a trained classifier as a bundle, TorchScript or ONNX.

TorchScript and ONNX hold the :class:`~labelemb.predict.network.Classifier`: from the input tensor
(images float in [0, 1], or word ids) to class scores, the run's normalisation inside;
``preprocessing.json`` beside it says how an input tensor is made and how scores become
probabilities. Each export is checked against the eager network on an example batch before it is
kept. Everything is written to a temporary folder first and moved into place at the end, so a
failed export writes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.text.corpus import PAD, TOKENIZERS
from ..data.text.options import TextOptions
from ..models import model_text_encoder
from ..rundir import VOCABULARY_FILE
from .bundle import bundle_files
from .inputs import image_shape
from .loading import load
from .predictor import Predictor
from .raw_texts import reads_raw_texts
from .source import Checkpoint, PredictError

FORMATS = ("bundle", "torchscript", "onnx")
PREPROCESSING_FILE = "preprocessing.json"
#: Exported scores must match the eager network's within this.
TOLERANCE = 1e-5
#: The ONNX opset written (onnxruntime 1.17 and later run it).
OPSET = 17


def export(
    run: str | Path | Predictor,
    fmt: str,
    output: str | Path,
    *,
    overwrite: bool = False,
    checkpoint: Checkpoint = "selected",
    trust_factory: str | None = None,
) -> list[Path]:
    """Write ``run`` (a run folder, a bundle, or a :class:`Predictor` already loaded) as ``fmt``
    (bundle, torchscript or onnx) into the folder ``output``, as ``labelemb export`` does; return
    the files written. An ``output`` that holds files is refused, before the run is read, unless
    ``overwrite``; ``checkpoint`` and ``trust_factory`` load a path as :func:`labelemb.load` does."""
    output = Path(output)
    if not overwrite and output.exists() and any(output.iterdir() if output.is_dir() else [output]):
        raise PredictError(f"{output} exists; choose another --output, or pass --overwrite to replace it")
    if isinstance(run, Predictor):
        if checkpoint != "selected" or trust_factory:
            raise PredictError(
                "checkpoint, trust_factory: a Predictor is loaded already; give them to labelemb.load, "
                "or hand over the run's folder instead"
            )
        predictor = run
    else:
        predictor = load(run, checkpoint=checkpoint, trust_factory=trust_factory)
    return exported(predictor, fmt, output)


def exported(predictor: Predictor, fmt: str, output: Path) -> list[Path]:
    """``predictor``'s run written as ``fmt`` into the folder ``output``; the files written."""
    if fmt not in FORMATS:
        raise PredictError(f"unknown export format {fmt!r}; choose {', '.join(FORMATS)}")
    if fmt != "bundle" and predictor.reads == "token_pairs":
        raise PredictError(
            "a sequence-to-sequence run exports as a bundle only: its decoding (beam search over the "
            "decoder's steps) is a loop around the network, not one network from input to scores"
        )
    if fmt != "bundle" and reads_raw_texts(predictor.model):
        raise PredictError(
            "a TF-IDF run exports as a bundle only: its network reads raw texts through the fitted "
            "vectorizer (strings, not a tensor), which TorchScript and ONNX cannot hold; use --format bundle"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as scratch:
        folder = Path(scratch)
        if fmt == "bundle":
            backbone = predictor.model.backbone
            files = bundle_files(
                predictor.trained, None if backbone is None else backbone.state_dict(), folder
            )
        else:
            files = [_traced(predictor, folder) if fmt == "torchscript" else _onnx(predictor, folder)]
            files.append(folder / PREPROCESSING_FILE)
            files[-1].write_text(json.dumps(preprocessing(predictor), indent=2) + "\n", encoding="utf-8")
            if predictor.trained.vocabulary is not None:
                files.append(folder / VOCABULARY_FILE)
                files[-1].write_text(
                    "".join(t + "\n" for t in predictor.trained.vocabulary), encoding="utf-8"
                )
        output.mkdir(parents=True, exist_ok=True)
        for file in files:
            os.replace(file, output / file.name)
    return [output / file.name for file in files]


def example_batch(predictor: Predictor, rows: int = 3) -> Tensor:
    """A batch of the network's input, for tracing and checking: random images, or word ids."""
    generator = torch.Generator().manual_seed(0)
    if predictor.reads == "texts":
        vocabulary = len(predictor.trained.vocabulary or []) or 100
        return torch.randint(2, max(vocabulary, 3), (rows, 12), generator=generator)
    return torch.rand((rows, *image_shape(predictor.trained)), generator=generator)


def _traced(predictor: Predictor, folder: Path) -> Path:
    """The network traced with TorchScript, checked on a second batch of another size."""
    model, example = predictor.model.cpu().eval(), example_batch(predictor)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's own deprecation and tracer notes
        traced = torch.jit.trace(model, example, check_trace=False)
    path = folder / "model.torchscript.pt"
    traced.save(str(path))
    check = example_batch(predictor, rows=5)
    _check_scores("TorchScript", traced(check), model(check))
    return path


def _onnx(predictor: Predictor, folder: Path) -> Path:
    """The network in ONNX (torch.onnx.export), checked with onnxruntime on a batch of another size."""
    try:
        # lazy: the export extra
        import onnx  # noqa: F401

        # lazy: the export extra
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PredictError("ONNX export needs onnx and onnxruntime: pip install 'labelemb[export]'") from None
    model, example = predictor.model.cpu().eval(), example_batch(predictor)
    path = folder / "model.onnx"
    dynamic = {"inputs": {0: "batch"}, "scores": {0: "batch"}}
    if predictor.reads == "texts":
        dynamic["inputs"][1] = "tokens"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation note
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["inputs"],
                output_names=["scores"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as error:  # the exporter's errors name the operator it cannot express
        raise PredictError(f"ONNX cannot express this network: {_first_line(error)}") from None
    session = onnxruntime_session(path)
    check = example_batch(predictor, rows=5)
    (scores,) = session.run(["scores"], {"inputs": check.numpy()})
    _check_scores("ONNX Runtime", torch.from_numpy(scores), model(check))
    return path


def onnxruntime_session(path: Path) -> Any:
    """An onnxruntime session on the CPU for the model at ``path``, its log kept to errors (its
    graph optimiser's notes are not the user's concern)."""
    import onnxruntime  # lazy: the export extra

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@torch.no_grad()
def _check_scores(what: str, got: Tensor, want: Tensor) -> None:
    gap = float((got.float() - want.float()).abs().max()) if want.numel() else 0.0
    if gap > TOLERANCE * max(1.0, float(want.abs().max())):
        raise PredictError(f"{what} gives scores {gap:.3g} away from the network's; nothing was written")


def preprocessing(predictor: Predictor) -> dict[str, Any]:
    """How an input tensor is made for the exported network, and how its scores become probabilities."""
    trained = predictor.trained
    config = trained.config
    out: dict[str, Any] = {
        "input": "inputs",
        "output": "scores",
        "classes": list(trained.class_names),
        "temperature": trained.temperature,
        "probabilities": "softmax(scores / temperature)" if trained.temperature else "softmax(scores)",
        "step": trained.step,
    }
    if trained.multi_label:
        out["probabilities"] = "sigmoid(scores), each tag's own"
        out["multi_label"] = True
        out["tag_threshold"] = trained.tag_threshold
        out["tags"] = "a tag is predicted where its probability reaches tag_threshold"
    if predictor.reads == "texts":
        out["reads"] = "texts"
        out["texts"] = _text_steps(predictor)
        return out
    channels, height, width = image_shape(trained)
    spec = config.data.augment
    out["reads"] = "images"
    out["images"] = {
        "shape": ["batch", channels, height, width],
        "dtype": "float32",
        "decode": f"Pillow: convert to {'L' if channels == 1 else 'RGB'} (alpha composited on black), "
        f"resize to {width} x {height} (width x height) with the bilinear filter unless already that size",
        "scale": "pixel / 255, so values lie in [0, 1]",
        "normalisation_inside": None if spec.mean is None else {"mean": spec.mean, "std": spec.std},
    }
    return out


def _text_steps(predictor: Predictor) -> dict[str, Any]:
    trained = predictor.trained
    config = trained.config
    options = config.section(TextOptions)
    encoder = model_text_encoder(config.model.name, config.options("model"))
    if encoder is not None:
        return {
            "dtype": "int64",
            "shape": ["batch", "tokens"],
            "tokenizer_folder": encoder,
            "ids": "the tokenizer's input_ids with special tokens, padded with its pad id",
        }
    tokenizer = options.tokenizer or "words"
    assert tokenizer in TOKENIZERS
    return {
        "dtype": "int64",
        "shape": ["batch", "tokens"],
        "tokenizer": tokenizer,
        "tokenizer_function": f"labelemb.data.text.{TOKENIZERS[tokenizer].__name__}",
        "max_text_tokens": options.max_text_tokens,
        "vocabulary": VOCABULARY_FILE,
        "ids": f"each token's line number (0-based) in {VOCABULARY_FILE}, <unk>'s if absent; padded with "
        f"{PAD}'s id ({(trained.vocabulary or [PAD]).index(PAD)})",
    }
