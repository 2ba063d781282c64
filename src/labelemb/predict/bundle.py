"""A bundle: a trained classifier in a folder of data files, read without its run folder.

``model.safetensors`` holds the network's weights (``model.*``, ``method.*``, and ``backbone.*`` for
a frozen backbone), ``config.yaml`` the run's config, ``bundle.json`` the rest (class names, the
temperature, input shapes, the check the weights are from, the preprocessing), ``vocabulary.txt``
a text run's vocabulary, ``label_representation.safetensors`` the method's label embedding
where it learned one and ``conformal.safetensors`` the dev split's conformal scores where its run
recorded them (:mod:`.sets`: the calibration of prediction sets). A bundle is data from someone
else: reading it parses safetensors, JSON, YAML (``yaml.safe_load``) and text only, never a
pickle; every value of ``bundle.json`` is checked (:mod:`.description`), every file it names must
lie inside its folder, and its config imports, runs or reads nothing but labelemb's own
(:mod:`.bundle_config`: a ``custom`` backbone's factory runs only when the user trusts it by name).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..aligned import aligned
from ..models import model_text_encoder
from ..rundir import (
    CONFIG_FILE,
    CONFORMAL_FILE,
    SUMMARY_FILE,
    TENSORS_FILE,
    VOCABULARY_FILE,
    VOCABULARY_FILES,
    RunDir,
)
from ..version import __version__
from .bundle_config import CONFIG_NAME, portable_config, read_bundle_config
from .description import RE_EXPORT, BundleDescription, bundle_file, read_description
from .sets import read_bundle_calibration, recorded_calibration, save_calibration
from .source import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    WEIGHTS_FILE,
    Checkpoint,
    PredictError,
    Trained,
    read_run,
)

BACKBONE_PREFIX = "backbone."


def bundle_files(trained: Trained, backbone: dict[str, Tensor] | None, folder: Path) -> list[Path]:
    """Write the bundle of ``trained`` into ``folder`` (which exists); return the files written."""
    weights = {name: _own(t) for name, t in trained.weights.items()}
    if backbone is not None:
        weights.update({BACKBONE_PREFIX + name: _own(t) for name, t in backbone.items()})
    written = [folder / WEIGHTS_FILE, folder / CONFIG_NAME, folder / BUNDLE_FILE]
    save_file(weights, str(written[0]), metadata={"format": "pt"})
    config, copied = portable_config(trained.config, folder)
    written[1].write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    written += copied
    if trained.vocabulary is not None:
        written.append(folder / VOCABULARY_FILE)
        written[-1].write_text("".join(token + "\n" for token in trained.vocabulary), encoding="utf-8")
    if trained.pair_vocabularies is not None:
        for name, tokens in zip(VOCABULARY_FILES, trained.pair_vocabularies):
            written.append(folder / name)
            written[-1].write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    if trained.label_tensors:
        written.append(folder / TENSORS_FILE)
        save_file({name: _own(t) for name, t in trained.label_tensors.items()}, str(written[-1]))
    description = describe(trained)
    calibration = recorded_calibration(trained)
    if calibration is not None:
        written.append(folder / CONFORMAL_FILE)
        save_calibration(written[-1], calibration)
        description["conformal"] = CONFORMAL_FILE

    written[2].write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return written


def _own(tensor: Tensor) -> Tensor:
    # safetensors refuses tensors that share memory (tied weights): each is saved on its own.
    return tensor.detach().cpu().contiguous().clone()


def describe(trained: Trained) -> dict[str, Any]:
    """What ``bundle.json`` holds."""
    config = trained.config
    return {
        "format": BUNDLE_FORMAT,
        "labelemb": __version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "exported_from": str(trained.origin),
        "checkpoint": trained.checkpoint,
        "step": trained.step,
        "test_error": trained.test_error,
        "reads": trained.reads,
        "multi_label": trained.multi_label,
        "tag_threshold": trained.tag_threshold,
        "class_names": list(trained.class_names),
        "temperature": trained.temperature,
        "input_shape": None if trained.input_shape is None else list(trained.input_shape),
        "backbone_input_shape": None
        if trained.backbone_input_shape is None
        else list(trained.backbone_input_shape),
        "train_examples": trained.train_examples,
        "vocabulary": VOCABULARY_FILE if trained.vocabulary is not None else None,
        "pair_vocabularies": list(VOCABULARY_FILES) if trained.pair_vocabularies is not None else None,
        "encoder": model_text_encoder(config.model.name, config.options("model")),
        "label_representation": TENSORS_FILE if trained.label_tensors else None,
        "conformal": None,
        "inputs": trained.inputs or None,
        "told_noise": trained.told_noise or None,
    }


def read_bundle(folder: Path, trust_factory: str | None = None) -> Trained:
    """The trained classifier a bundle holds (see the module docstring); ``trust_factory``: the
    ``custom`` backbone factory (``package.module:function``) the user trusts to run."""
    described = read_description(folder)
    config = read_bundle_config(folder, trust_factory)
    tensors = _safetensors(folder, WEIGHTS_FILE, "weights")
    backbone = {k[len(BACKBONE_PREFIX) :]: t for k, t in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    weights = {k: t for k, t in tensors.items() if not k.startswith(BACKBONE_PREFIX)}
    vocabulary = _tokens(folder, described.vocabulary, "vocabulary") if described.vocabulary else None
    pairs = [_tokens(folder, name, "pair_vocabularies") for name in described.pair_vocabularies or ()]
    labels = {}
    if described.label_representation:
        labels = _safetensors(folder, described.label_representation, "label_representation")
    trained = Trained(
        origin=folder,
        config=config,
        class_names=list(described.class_names),
        weights=weights,
        input_shape=tuple(described.input_shape),
        backbone_input_shape=_shape(described.backbone_input_shape),
        train_examples=described.train_examples,
        temperature=described.temperature,
        step=described.step,
        checkpoint=described.checkpoint,
        vocabulary=vocabulary,
        pair_vocabularies=(pairs[0], pairs[1]) if pairs else None,
        backbone=backbone or None,
        test_error=described.test_error,
        label_tensors=labels,
        inputs=dict(described.inputs or {}),
        told_noise=dict(described.told_noise or {}),
        tag_threshold=described.tag_threshold,
    )
    _check_fits(trained, described)
    if described.conformal:
        trained.calibration = read_bundle_calibration(folder, described.conformal, trained)
    return trained


def _safetensors(folder: Path, name: str, field: str) -> dict[str, Tensor]:
    """The tensors of the bundle's safetensors file ``name`` (its ``field``)."""
    path = bundle_file(folder, name, field)
    try:
        return {key: aligned(t) for key, t in load_file(str(path)).items()}
    except Exception as error:  # a torn or foreign file: name it
        raise PredictError(f"cannot read {path} ({error}); {RE_EXPORT}") from None


def _tokens(folder: Path, name: str, field: str) -> list[str]:
    """The tokens of the bundle's vocabulary file ``name`` (its ``field``), one a line, in id order."""
    path = bundle_file(folder, name, field)
    try:
        return [line for line in path.read_text(encoding="utf-8").split("\n") if line]
    except (OSError, UnicodeDecodeError) as error:
        raise PredictError(f"cannot read {path} ({error}); {RE_EXPORT}") from None


def _check_fits(trained: Trained, described: BundleDescription) -> None:
    """Refuse a description that does not fit its config: what the data yields (and whether it is
    tag sets, with their threshold), a frozen backbone's input shape, and each vocabulary's size
    against the shape the network reads."""
    where = f"{trained.origin / BUNDLE_FILE}"
    if described.reads != trained.reads or described.multi_label != trained.multi_label:
        raise PredictError(
            f"{where}: reads is {described.reads!r} and multi_label {str(described.multi_label).lower()}, "
            f"but its config's data holds {trained.yields}; {RE_EXPORT}"
        )
    if trained.multi_label and trained.tag_threshold is None:
        raise PredictError(f"{where}: tag_threshold is missing for its tag sets; {RE_EXPORT}")
    if trained.frozen and trained.backbone_input_shape is None:
        raise PredictError(f"{where}: backbone_input_shape is missing for its frozen backbone; {RE_EXPORT}")
    shape = trained.backbone_input_shape if trained.frozen else trained.input_shape
    if trained.vocabulary is not None and shape != (len(trained.vocabulary),):
        raise PredictError(
            f"{where}: its vocabulary holds {len(trained.vocabulary)} tokens, but the network reads "
            f"ids of {_shape_text(shape)}; {RE_EXPORT}"
        )
    if trained.pair_vocabularies is not None:
        sizes = tuple(len(tokens) for tokens in trained.pair_vocabularies)
        if trained.input_shape != sizes:
            raise PredictError(
                f"{where}: its pair_vocabularies hold {sizes[0]} and {sizes[1]} tokens, but the "
                f"network reads ids of {_shape_text(trained.input_shape)}; {RE_EXPORT}"
            )


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "an unknown shape" if shape is None else f"shape {list(shape)}"


def _shape(value: list[int] | None) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def read_trained(
    path: str | Path, checkpoint: Checkpoint = "selected", trust_factory: str | None = None
) -> Trained:
    """The run folder or bundle at ``path`` (a bundle read here, a run folder by
    :func:`.source.read_run`); a :class:`PredictError` if it is neither, or cannot be used.
    ``trust_factory`` lets a bundle's ``custom`` backbone factory of that name run (a run folder's
    config is the user's own, and runs as it trained)."""
    path = Path(path)
    if (path / BUNDLE_FILE).is_file():
        return read_bundle(path, trust_factory)
    if (path / CONFIG_FILE).is_file():
        return read_run(RunDir(path), checkpoint)
    what = "does not exist" if not path.exists() else "is neither a labelemb run folder"
    if path.exists():
        what += f" ({CONFIG_FILE}, {SUMMARY_FILE}) nor an exported bundle ({BUNDLE_FILE})"
    raise PredictError(f"{path} {what}; give a run folder such as runs/<experiment>/<method>/seed0")
