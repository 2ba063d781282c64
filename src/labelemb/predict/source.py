"""What a prediction needs of a trained run, read from its run folder or from an exported bundle.

A run folder gives its config, the weights of the check its summary selected (or of the last
check, when asked), the fitted temperature of that check, its class names and vocabulary. A bundle
(:mod:`labelemb.predict.export`) holds the same in safetensors, JSON and YAML files, so it is read
without the run folder and without running code from the files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from safetensors.torch import load_file as load_safetensors
from torch import Tensor

from ..assembly import load_run_data, recorded_noise_context
from ..config import RunConfig
from ..data.base import DataError
from ..data.registry import dataset_yields
from ..rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    NOISE_FILE,
    SELECTED_MODEL_FILE,
    START_FILE,
    SUMMARY_FILE,
    VOCABULARY_FILE,
    VOCABULARY_FILES,
    RunDir,
    RunDirError,
    yaml_problem,
)
from ..tasks import input_kind
from .calibration import Calibration

#: Which weights of a run are read: the selected check's (the summary's figures) or the last.
Checkpoint = Literal["selected", "last"]
#: The bundle's description file, and the format this version writes and reads.
BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"


class PredictError(ValueError):
    """A run, bundle or input that cannot be predicted with; the message says which and why."""


@dataclass
class Trained:
    """A trained classifier as a prediction rebuilds it: its config and weights, what its network
    reads, its classes, the fitted temperature of the check the weights are from, and (for a text
    run) its vocabulary. ``backbone`` holds a frozen backbone's weights where they were saved (a
    bundle); a run folder's frozen backbone is rebuilt from its config as training built it."""

    origin: Path
    config: RunConfig
    class_names: list[str]
    weights: dict[str, Tensor]
    #: What the network (for a frozen backbone, its head) reads; and what a frozen backbone reads.
    input_shape: tuple[int, ...] | None
    backbone_input_shape: tuple[int, ...] | None
    train_examples: int
    temperature: float | None
    step: int
    checkpoint: Checkpoint
    vocabulary: list[str] | None = None
    #: A sequence-to-sequence run's source and target vocabularies, tokens in id order.
    pair_vocabularies: tuple[list[str], list[str]] | None = None
    backbone: dict[str, Tensor] | None = None
    #: The test error the run recorded at that check (%), where it recorded one.
    test_error: float | None = None
    #: The method's label representation (``representation``, ``embedding``), where it saved one.
    label_tensors: dict[str, Tensor] = field(default_factory=dict)
    #: What a run on noisy labels told its method of them (``noise_rate``, ``noise_transition``;
    #: :func:`~labelemb.assembly.parts.noise_context`), so that the method is rebuilt as it trained.
    told_noise: dict[str, Any] = field(default_factory=dict)
    #: Why the check read has no temperature (when ``temperature`` is None), for the output's note.
    no_temperature: str = "the check read records none"
    #: A bundle's conformal calibration (:mod:`.sets`), checked against its weights when read; a
    #: run folder's is read (or computed) when prediction sets are asked for.
    calibration: Calibration | None = None
    #: What the run recorded of its training images (``start.json``'s ``inputs``: low, high and mean
    #: as the network reads them, the pixel scale the data set divided by); empty where it did not.
    inputs: dict[str, float] = field(default_factory=dict)
    #: A multi-label run's threshold at the check read: a tag is predicted where its sigmoid
    #: probability reaches it (the metrics' ``tag_threshold``); None for every other run.
    tag_threshold: float | None = None

    @property
    def yields(self) -> str:
        """What the run's data held: ``images``, ``texts``, ``tagged texts`` (a text and a set of tags
        per row), or ``token_pairs`` for a text pair run."""
        return dataset_yields(self.config.data.name, self.config.data_sections())

    @property
    def reads(self) -> str:
        """What the network reads: ``images``, ``texts`` (a multi-label run's too: its texts are
        made as a single-label run's) or ``token_pairs``: its task's inputs."""
        return input_kind(self.yields)

    @property
    def multi_label(self) -> bool:
        """Whether the run predicts a set of tags per input (one logit per tag, each its own sigmoid)."""
        return self.yields == "tagged texts"

    @property
    def frozen(self) -> bool:
        return bool(self.config.model.freeze)


def read_run(folder: RunDir, checkpoint: Checkpoint) -> Trained:
    """A run folder's trained classifier at ``checkpoint`` (see :func:`read_trained`)."""
    config = run_config(folder)
    records = folder.read_metrics()
    if not folder.is_finished():
        if checkpoint != "last":
            raise PredictError(
                f"{folder.path} is still training (it has no {SUMMARY_FILE}); wait for it to finish, "
                "or predict with its latest check: --checkpoint last"
            )
        start = read_start(folder.path) or _described_by_data(folder, config)
        return _trained(folder, config, records, *_latest(folder), "last", start)
    summary = folder.read_summary(required=("class_names", "steps"))
    if checkpoint == "last":
        weights, step = _final_weights(folder, summary), int(summary["steps"])
    else:
        weights, step = _selected(folder, summary)
    return _trained(folder, config, records, weights, step, checkpoint, summary)


def read_start(folder: Path) -> dict[str, Any]:
    """What a run recorded when it started (:data:`START_FILE`), or nothing for a run of an
    earlier labelemb (or a bundle)."""
    path = folder / START_FILE
    if not path.is_file():
        return {}
    record = read_json(path)
    if not isinstance(record, dict):
        raise PredictError(f"{path} does not hold a mapping; the file is damaged")
    return record


def _described_by_data(folder: RunDir, config: RunConfig) -> dict[str, Any]:
    """An unfinished run of an earlier labelemb recorded neither its classes nor its shapes: they
    are read off its data, where its config names it."""
    try:
        dataset = load_run_data(config)
    except DataError as error:
        problem = str(error).split("; ")[0]
        raise PredictError(
            f"{folder.path} did not finish and, trained by an earlier labelemb, recorded no class "
            f"names ({START_FILE}): they are read off its data, which is not where its config says "
            f"({problem}); set LABELEMB_DATA to the folder that holds its data files"
        ) from None
    shape = list(dataset.input_shape)
    frozen = {"frozen": {"input_shape": shape}} if config.model.freeze else {}
    names = list(dataset.class_names)
    return {"class_names": names, "input_shape": None if frozen else shape, "data": frozen}


def run_config(folder: RunDir) -> RunConfig:
    """The run's config, or a :class:`PredictError` if this version cannot read it."""
    try:
        return folder.read_valid_config(RunConfig)  # type: ignore[return-value]
    except RunDirError as error:
        raise PredictError(f"{error} (a run of another labelemb version?)") from None


def _latest(folder: RunDir) -> tuple[dict[str, Tensor], int]:
    """The weights and step of a run's last checkpoint."""
    state = folder.read_checkpoint()
    if state is None or "network" not in state:
        raise PredictError(f"{folder.path} has no checkpoint yet: it has not reached its first check")
    return state["network"], int(state["progress"]["step"])


def _selected(folder: RunDir, summary: dict[str, Any]) -> tuple[dict[str, Tensor], int]:
    """The weights of the check the summary selected: the final ones when it is the last check,
    else those kept at it (``model.selected.pt``)."""
    step, final = int(summary.get("selected_step", summary["steps"])), int(summary["steps"])
    if step == final:
        return _final_weights(folder, summary), step
    kept = folder.read_selected_weights()
    if kept is None or kept[0] != step:
        _final_source(folder, summary)  # the advice below must work: the final weights are there
        raise PredictError(
            f"{folder.path} kept only its final weights (step {final}), not those of its selected "
            f"check (step {step}): it was trained by an earlier labelemb, or its {SELECTED_MODEL_FILE} "
            "is gone (a tuning trial keeps none). Predict with the final weights: --checkpoint last "
            f"(test error {summary.get('final_test_error')} %)"
        )
    return kept[1], step


def _final_weights(folder: RunDir, summary: dict[str, Any]) -> dict[str, Tensor]:
    """A finished run's final weights: ``model.pt``, or its checkpoint's network, taken at the
    same last step, where ``model.pt`` is gone."""
    if _final_source(folder, summary) == MODEL_FILE:
        return folder.read_weights()
    return _latest(folder)[0]


def _final_source(folder: RunDir, summary: dict[str, Any]) -> str:
    """The file that holds a finished run's final weights; a :class:`PredictError` with what to do
    where none does."""
    if folder.file(MODEL_FILE).is_file():
        return MODEL_FILE
    state = folder.read_checkpoint()
    if state is not None and "network" in state and int(state["progress"]["step"]) == int(summary["steps"]):
        return CHECKPOINT_FILE
    raise PredictError(
        f"{folder.path} has no weights to predict with: {MODEL_FILE} is gone, and no "
        f"{CHECKPOINT_FILE} of its last step is left; restore the run folder from a copy, or train "
        f"it again into another folder: labelemb train --config {folder.file(CONFIG_FILE)} "
        "--output-dir OTHER"
    )


def _trained(
    folder: RunDir,
    config: RunConfig,
    records: list[dict[str, Any]],
    weights: dict[str, Tensor],
    step: int,
    checkpoint: Checkpoint,
    summary: dict[str, Any],
) -> Trained:
    """What a run folder holds at ``step``, in the form a prediction rebuilds from."""
    record = next((r for r in records if r["step"] == step), records[-1])
    last = records[-1]
    details = summary.get("data") or {}
    frozen = details.get("frozen") or {}
    vocabulary = read_tokens(folder.file(VOCABULARY_FILE))
    pairs = [read_tokens(folder.file(name)) for name in VOCABULARY_FILES]
    pair_vocabularies = (pairs[0], pairs[1]) if pairs[0] is not None and pairs[1] is not None else None
    shape = summary.get("input_shape")
    if shape is None and pair_vocabularies is not None:
        shape = [len(pair_vocabularies[0]), len(pair_vocabularies[1])]
    backbone_shape = frozen.get("input_shape")
    if shape is None and not config.model.freeze:
        shape = details.get("image_shape") or ([len(vocabulary)] if vocabulary else None)
    if backbone_shape is None and config.model.freeze:
        backbone_shape = details.get("image_shape") or ([len(vocabulary)] if vocabulary else None)
    # A text pair run's classes are its target vocabulary.
    names = summary.get("class_names") or (pair_vocabularies or (None, None))[1] or []
    temperature = record.get("temperature")
    no_temperature = "" if temperature is not None else _missing_temperature(records, record, config)
    inputs = read_start(folder.path).get("inputs") or {}
    return Trained(
        origin=folder.path,
        inputs=dict(inputs) if isinstance(inputs, dict) else {},
        config=config,
        class_names=list(names),
        weights=weights,
        input_shape=None if shape is None else tuple(int(d) for d in shape),
        backbone_input_shape=None if backbone_shape is None else tuple(int(d) for d in backbone_shape),
        train_examples=round(last["examples"] / last["epoch"]) if last.get("epoch") else 0,
        temperature=None if temperature is None else float(temperature),
        step=step,
        checkpoint=checkpoint,
        vocabulary=vocabulary,
        pair_vocabularies=pair_vocabularies,
        test_error=record.get("test_error"),
        label_tensors=folder.read_tensors(),
        told_noise=_told_noise(folder),
        no_temperature=no_temperature,
        tag_threshold=record.get("tag_threshold"),
    )


def _missing_temperature(records: list[dict[str, Any]], record: dict[str, Any], config: RunConfig) -> str:
    """Why the check of ``record`` fit no temperature: a run without a dev split fits none, and a
    run with one fits it only at a check that can become the selected one (its dev figure beats
    every earlier check's) whose scores are finite (:func:`~labelemb.training.loop.selectable_check`)."""
    step = record["step"]
    if "dev_error" not in record:
        return "the run has no dev split to fit one on"
    if not any("temperature" in r for r in records):
        return (
            "the run fit none at any check: it was trained by a labelemb that fit no temperatures, "
            "or its dev scores were never finite"
        )
    metric = config.selection_metric or "dev_error"
    value = record.get(metric)
    earlier = [r[metric] for r in records if r["step"] < step and r.get(metric) is not None]
    lower_is_better = metric.endswith("error")
    best = (min(earlier) if lower_is_better else max(earlier)) if earlier else None
    if config.selection == "best_dev" and value is not None and best is not None:
        if (value >= best) if lower_is_better else (value <= best):
            return (
                f"its check at step {step} fit none: a temperature is fit only at a check that can "
                f"become the selected one, and its {metric} ({value:.4g}) did not beat the best "
                f"before it ({best:.4g})"
            )
    return f"its check at step {step} fit none: its scores on the dev split were not finite"


def read_tokens(path: Path) -> list[str] | None:
    """A vocabulary file's tokens in id order (one a line), or None if there is no such file."""
    if not path.is_file():
        return None
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def read_json(path: Path) -> Any:
    """A JSON file of a bundle; a :class:`PredictError` naming it if it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictError(f"cannot read {path} ({error}); the bundle is damaged") from None


def read_yaml(path: Path) -> Any:
    """A YAML file of a bundle, read safely (no tags that build objects)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PredictError(f"cannot read {path} ({yaml_problem(error)}); the bundle is damaged") from None


def weights_digest(weights: dict[str, Tensor]) -> str:
    """A SHA-256 of a state dict: each tensor's name, shape, dtype and bytes, in name order."""
    hasher = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        hasher.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def _told_noise(folder: RunDir) -> dict[str, Any]:
    """What a run on noisy labels told its method of them, from its ``label_noise.safetensors``
    (empty for a run on right labels)."""
    path = folder.file(NOISE_FILE)
    if not path.is_file():
        return {}
    return recorded_noise_context(load_safetensors(str(path)))
