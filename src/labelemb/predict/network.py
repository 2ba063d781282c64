"""A trained run's network rebuilt from its config and weights, from its input tensor to class scores.

:class:`Classifier` is what the predictor runs and what TorchScript and ONNX export: the run's
evaluation normalisation (``data.augment``'s mean and std), a frozen backbone where the run froze
one, the trained network, and the method's ``logits``: the same operations, in the same order,
as the trainer's evaluation, so its scores are the ones the run's recorded figures came from.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .. import methods
from ..assembly import Network, build_network, data_request, frozen_backbone, load_run_data
from ..assembly.frozen import fitted_on_texts
from ..assembly.plan import features_of
from ..data.base import DataError
from ..data.files.memo import data_key
from ..data.registry import dataset_key
from .source import PredictError, Trained


@dataclass
class _DataShape:
    """What building a run's network reads of its data set: the input shape, the classes, the
    number of training examples (a method with per-example state sizes its buffers by it)."""

    input_shape: tuple[int, ...]
    class_names: list[str]
    train: range
    #: What the run told its method of its noisy labels (:func:`~labelemb.assembly.parts.noise_context`).
    told_noise: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Classifier(nn.Module):
    """A batch of inputs (images float in [0, 1], word ids, or features) -> class scores ``(N, m)``.

    ``model`` and ``method`` are the run's trained modules (for a frozen backbone, ``model`` is
    the head on its features and ``backbone`` the backbone); ``mean`` and ``std`` the per-channel
    normalisation evaluation applies to an image, or None.
    """

    def __init__(
        self,
        model: nn.Module,
        method: methods.Method,
        backbone: nn.Module | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.backbone = backbone
        self.normalise = mean is not None and std is not None
        if self.normalise:
            # As labelemb.data.augment.normalize builds them: float32 from the config's numbers.
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, inputs: Tensor) -> Tensor:
        if self.normalise:
            inputs = (inputs - self.mean) / self.std
        if self.backbone is not None:
            inputs = self.backbone(inputs)
        return self.method.logits(self.model(inputs))


def build_classifier(trained: Trained) -> Classifier:
    """The :class:`Classifier` of ``trained``, its weights loaded, in evaluation mode (on the CPU)."""
    config = trained.config
    # Building draws initial weights; the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        backbone = _frozen_backbone(trained) if trained.frozen else None
        shape = trained.input_shape or _input_shape(trained, backbone)
        trained.input_shape = shape  # what the inputs are made for, now known
        data = _DataShape(
            shape, list(trained.class_names), range(max(trained.train_examples, 1)), dict(trained.told_noise)
        )
        try:
            model, method = build_network(config, data)  # type: ignore[arg-type]
        except (ValueError, TypeError, ImportError, RuntimeError) as error:
            raise PredictError(f"{trained.origin}: cannot rebuild its network ({_line(error, 0)})") from None
    network = Network(model, method)
    try:
        network.load_state_dict(trained.weights)
    except RuntimeError as error:
        raise PredictError(
            f"{trained.origin}: its weights do not fit the network its config builds for "
            f"{data.num_classes} classes and inputs of shape {list(shape)} ({_line(error, 1)}); "
            "it was written by another labelemb version, or its class names or shapes were changed"
        ) from None
    spec = config.data.augment
    classifier = Classifier(model, method, backbone, spec.mean, spec.std)
    return classifier.eval()


def _frozen_backbone(trained: Trained) -> nn.Module:
    """A frozen run's backbone as training built it (pretrained weights, or random ones drawn with
    the frozen seed), or with the weights a bundle saved."""
    shape = trained.backbone_input_shape
    if shape is None:
        shape = tuple(load_run_data(trained.config).input_shape)  # a run from before shapes were kept
        trained.backbone_input_shape = shape
    data = _DataShape(tuple(shape), list(trained.class_names), range(1))
    # A bundle's saved weights replace what is built: a fitted representation is built empty, reading no data.
    empty = trained.backbone is not None
    backbone = kept_fitted(trained.config, empty, lambda: frozen_backbone(trained.config, data, empty=empty))
    if trained.backbone is not None:
        try:
            backbone.load_state_dict(trained.backbone)
        except RuntimeError as error:
            raise PredictError(
                f"{trained.origin}: its backbone weights do not fit ({_line(error, 1)})"
            ) from None
    return backbone.eval()


#: The fitted representations (``tfidf``) this process built for run folders, by what they were
#: fitted on (:func:`fitted_key`): the runs of a comparison (seeds, methods) share one.
_FITTED: dict[str, nn.Module] = {}


def kept_fitted(config: Any, empty: bool, build: Callable[[], nn.Module]) -> nn.Module:
    """The frozen backbone ``build`` makes for a run of ``config``; for a representation fitted to
    the run's training texts (``tfidf``, not ``empty``), built once for the same files, options
    and backbone and copied for each run after (the copy is the run's own)."""
    key = None if empty else fitted_key(config)
    if key is None:
        return build()
    if key not in _FITTED:
        backbone = build()
        if getattr(backbone, "missing", None) is not None:
            return backbone  # built empty: its data could not be read here
        _FITTED.clear()  # one kept: a TF-IDF's terms are megabytes
        _FITTED[key] = backbone
    return copy.deepcopy(_FITTED[key])


def fitted_key(config: Any) -> str | None:
    """What the fitted representation of a run of ``config`` is made from (its data's files and
    options, :func:`~labelemb.data.files.memo.data_key`; a ``data.clean`` list's action and bytes,
    which decide the training texts; the backbone and its options; the cache folder), as a sha256;
    None for a backbone that is not fitted, or data that is not files."""
    part = features_of(config)
    if not fitted_on_texts(part.backbone) or dataset_key(config.data.name) != "files":
        return None
    request = data_request(config)
    data = data_key(request)
    if data is None:
        return None
    cleaning = request.sections.get("clean")
    try:
        cleaned = None if cleaning is None else cleaning.fingerprint(None, request)
    except (DataError, OSError):
        return None  # a list that cannot be read here: the run's loader says why
    described = {
        "data": data,
        "clean": cleaned,
        "backbone": dataclasses.asdict(part.backbone),
        "cache_dir": part.cache_dir,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _line(error: Exception, number: int) -> str:
    """Line ``number`` of ``error``'s message (the last there is if fewer): ``load_state_dict``
    names the first difference on its second line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[min(number, len(lines) - 1)] if lines else type(error).__name__


def _input_shape(trained: Trained, backbone: nn.Module | None) -> tuple[int, ...]:
    """What the network reads when the run did not record it: a frozen backbone's feature width,
    or (a run from before shapes were kept) the shape of its data."""
    if backbone is not None and trained.backbone_input_shape is not None:
        texts = trained.reads == "texts"
        probe = (
            torch.zeros((1, 4), dtype=torch.int64)
            if texts
            else torch.zeros((1, *trained.backbone_input_shape))
        )
        with torch.inference_mode():
            features = backbone(probe)
        return (int(features.shape[-1]),)

    return tuple(load_run_data(trained.config).input_shape)
