"""A bundle: a trained classifier in a folder of data files, read without its run folder.

``model.safetensors`` holds the network's weights (``model.*``, ``method.*``, and ``backbone.*`` for
a frozen backbone), ``config.yaml`` the run's config, ``bundle.json`` the rest (class names, the
temperature, input shapes, the check the weights are from, the preprocessing), ``vocabulary.txt``
a text run's vocabulary and ``label_representation.safetensors`` the method's label embedding
where it learned one. Reading it parses safetensors, JSON and YAML (``yaml.safe_load``) only: no
pickle, so no code from the files runs. A pretrained encoder is named by reference (its folder or
package), as the run's config names it.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from ..aligned import aligned
from ..models import model_text_encoder
from ..rundir import CONFIG_FILE, SUMMARY_FILE, TENSORS_FILE, VOCABULARY_FILE, VOCABULARY_FILES, RunDir
from ..train.config import RunConfig
from ..version import __version__
from .source import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    WEIGHTS_FILE,
    Checkpoint,
    PredictError,
    Trained,
    read_json,
    read_run,
    read_tokens,
    read_yaml,
)

CONFIG_NAME = "config.yaml"
BACKBONE_PREFIX = "backbone."


def bundle_files(trained: Trained, backbone: dict[str, Tensor] | None, folder: Path) -> list[Path]:
    """Write the bundle of ``trained`` into ``folder`` (which exists); return the files written."""
    from safetensors.torch import save_file

    weights = {name: _own(t) for name, t in trained.weights.items()}
    if backbone is not None:
        weights.update({BACKBONE_PREFIX + name: _own(t) for name, t in backbone.items()})
    written = [folder / WEIGHTS_FILE, folder / CONFIG_NAME, folder / BUNDLE_FILE]
    save_file(weights, str(written[0]), metadata={"format": "pt"})
    config = trained.config.model_dump(mode="json")
    written[1].write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
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
    import json

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
        "reads": trained.yields,
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
    }


def read_bundle(folder: Path) -> Trained:
    """The trained classifier a bundle holds (see the module docstring)."""
    from safetensors.torch import load_file

    description = read_json(folder / BUNDLE_FILE)
    if not isinstance(description, dict) or "format" not in description:
        raise PredictError(f"{folder / BUNDLE_FILE} is not a labelemb bundle description")
    if description["format"] != BUNDLE_FORMAT:
        raise PredictError(
            f"{folder} is a bundle of format {description['format']} (labelemb "
            f"{description.get('labelemb', '?')}); this labelemb ({__version__}) reads format {BUNDLE_FORMAT}"
        )
    try:
        config = RunConfig.model_validate(read_yaml(folder / CONFIG_NAME))
    except ValueError as error:
        problem = " ".join(str(error).split()[:40])
        raise PredictError(
            f"{folder / CONFIG_NAME} is not a config this labelemb reads ({problem})"
        ) from None
    try:
        tensors = {name: aligned(t) for name, t in load_file(str(folder / WEIGHTS_FILE)).items()}
    except Exception as error:  # a torn or foreign file: name it
        raise PredictError(f"cannot read {folder / WEIGHTS_FILE} ({error}); the bundle is damaged") from None
    backbone = {k[len(BACKBONE_PREFIX) :]: t for k, t in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    weights = {k: t for k, t in tensors.items() if not k.startswith(BACKBONE_PREFIX)}
    vocabulary = read_tokens(folder / description["vocabulary"]) if description.get("vocabulary") else None
    pairs = [read_tokens(folder / name) for name in description.get("pair_vocabularies") or ()]
    labels = {}
    if description.get("label_representation"):
        labels = {
            k: aligned(t) for k, t in load_file(str(folder / description["label_representation"])).items()
        }
    return Trained(
        origin=folder,
        config=config,
        class_names=list(description["class_names"]),
        weights=weights,
        input_shape=_shape(description.get("input_shape")),
        backbone_input_shape=_shape(description.get("backbone_input_shape")),
        train_examples=int(description.get("train_examples") or 1),
        temperature=description.get("temperature"),
        step=int(description.get("step") or 0),
        checkpoint=description.get("checkpoint", "selected"),
        vocabulary=vocabulary,
        pair_vocabularies=(pairs[0], pairs[1]) if len(pairs) == 2 and None not in pairs else None,  # type: ignore[arg-type]
        backbone=backbone or None,
        test_error=description.get("test_error"),
        label_tensors=labels,
    )


def _shape(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(d) for d in value)


def read_trained(path: str | Path, checkpoint: Checkpoint = "selected") -> Trained:
    """The run folder or bundle at ``path`` (a bundle read here, a run folder by
    :func:`.source.read_run`); a :class:`PredictError` if it is neither, or cannot be used."""
    path = Path(path)
    if (path / BUNDLE_FILE).is_file():
        return read_bundle(path)
    if (path / CONFIG_FILE).is_file():
        return read_run(RunDir(path), checkpoint)
    what = "does not exist" if not path.exists() else "is neither a labelemb run folder"
    if path.exists():
        what += f" ({CONFIG_FILE}, {SUMMARY_FILE}) nor an exported bundle ({BUNDLE_FILE})"
    raise PredictError(f"{path} {what}; give a run folder such as runs/<experiment>/<method>/seed0")
