"""A frozen backbone (``model.freeze: true``): its features computed once per split and cached,
so a run trains only what follows them (a dense layer, the method's head).

The backbone is built as the config names it (pretrained weights; a random one, ``pretrained:
false``, is drawn with seed 0 so every seed of a comparison reads the same features), put in eval
mode (batch norm uses its running statistics, dropout is off) and run over train, dev and test.
Each split's features are kept in the feature cache (:mod:`labelemb.data.feature_cache`) under a
key of the backbone's weights, the split's inputs and the preprocessing, so the next run, method
or seed reads them in a fraction of a second and many seeds train stacked on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import models
from ..config import RunConfig
from ..data import Dataset, Split
from ..data.augment import Augment
from ..data.base import DataError
from ..data.feature_cache import backbone_digest, cached_features, split_key
from ..data.files.paths import cache_root
from ..progress import draws_bar
from ..tasks import Task
from .build import load_run_data
from .parts import Backbone, FrozenFeatures
from .plan import backbone_of, features_of
from .tfidf import TfidfFeatures, fitted_tfidf, learned_terms, term_entries, vectorizer_options
from .tfidf import split_features as tfidf_split_features

SPLIT_NAMES = ("train", "dev", "test")
#: The seed a frozen backbone's random weights (``pretrained: false``) are drawn with.
FROZEN_BACKBONE_SEED = 0


@dataclass
class FeatureDataset(Dataset):
    """A data set seen through a frozen backbone: each split's inputs are its features, float32
    ``(N, d)``; labels, class names and ``yields`` (hence the task) are the original data set's.
    ``details["frozen"]`` (in the run's summary) names the backbone, the feature width, the cache
    folder, and for each split whether its features were read from the cache and how long it took.
    """

    def __post_init__(self) -> None:
        width = self.train.inputs.shape[1:]
        for split_name in SPLIT_NAMES:
            split = getattr(self, split_name)
            if split is None:
                continue
            if split.inputs.dim() != 2 or split.inputs.dtype != torch.float32:
                raise ValueError(
                    f"{split_name} features must be float32 (N, d), got {tuple(split.inputs.shape)}"
                )
            if split.inputs.shape[1:] != width:
                raise ValueError(f"{split_name} features are {split.inputs.shape[1]}-d, train's {width[0]}-d")


@dataclass
class TermDataset(FeatureDataset):
    """A text data set seen through its fitted TF-IDF for a learned projection (``model.tfidf``'s
    ``projection: learned``): each split's inputs are its texts' TF-IDF entries, float32
    ``(N, max_terms, 2)`` (:func:`~labelemb.assembly.tfidf.term_entries`), ids below ``terms``.
    Its ``input_shape`` leads with ``terms``: the head's table is built for them."""

    terms: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        shape = self.train.inputs.shape[1:]
        for split_name in SPLIT_NAMES:
            split = getattr(self, split_name)
            if split is not None and (split.inputs.dim() != 3 or split.inputs.shape[1:] != shape):
                raise ValueError(
                    f"{split_name} TF-IDF entries must be (N, {shape[0]}, 2), got {tuple(split.inputs.shape)}"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.terms, *(int(d) for d in self.train.inputs.shape[1:]))


def freeze_features(config: RunConfig, dataset: Any, task: Task, device: torch.device) -> FeatureDataset:
    """``dataset`` seen through the frozen backbone of ``config`` (:func:`features_through`)."""
    return features_through(features_of(config), dataset, task, device)


def features_through(part: FrozenFeatures, dataset: Any, task: Task, device: torch.device) -> FeatureDataset:
    """``dataset`` seen through a frozen backbone: every split's features, read from the feature
    cache or computed there (in eval mode, on ``device``)."""
    if isinstance(dataset, FeatureDataset):
        return dataset
    if fitted_on_texts(part.backbone):
        return tfidf_dataset(part, dataset)
    backbone = built_frozen(part.backbone, dataset.input_shape).to(device).eval()
    normalise = None if part.mean is None else Augment(mean=part.mean, std=part.std)
    folder = cache_root(part.cache_dir) / "features"
    description = {
        "model": part.backbone.name,
        "options": part.backbone.options,
        "normalise": [part.mean, part.std],
        "precision": part.precision,
    }
    digest = backbone_digest(description, backbone.state_dict())
    splits: dict[str, Split | None] = {}
    caches: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        split = getattr(dataset, name)
        if split is None:
            splits[name] = None
            continue
        inputs = [split.inputs, *([split.lengths] if hasattr(split, "lengths") else [])]
        started = time.perf_counter()
        key = split_key(digest, inputs)
        features, reused = cached_features(
            folder,
            key,
            len(split),
            lambda split=split, name=name: split_features(
                backbone, split, task, device, part, normalise, label=f"{name} features"
            ),
            label=f"{part.backbone.name} features of {name}",
            progress=part.progress,
        )
        caches[name] = {"reused": reused, "seconds": round(time.perf_counter() - started, 3)}
        splits[name] = Split(features, split.labels, origins=split.origins)
    width = int(splits["train"].inputs.shape[1])  # type: ignore[union-attr]
    frozen = {
        "backbone": part.backbone.name,
        "features": width,
        # What the backbone reads, so that a prediction can rebuild it without the data.
        "input_shape": list(dataset.input_shape),
        "folder": str(folder),
        "splits": caches,
    }
    return feature_dataset(dataset, splits, frozen)


def frozen_backbone(config: RunConfig, dataset: Any, *, empty: bool = False) -> nn.Module:
    """The backbone of ``config`` as a run freezes it, built for ``dataset`` (:func:`built_frozen`);
    a representation fitted to the training texts (``tfidf``) is read from its cache or fitted to
    the run's data again, or, with ``empty`` (a bundle, whose saved buffers fill it), built empty
    without reading any data."""
    backbone = backbone_of(config)
    if fitted_on_texts(backbone) and empty:
        missing = "the bundle's saved buffers were not loaded"
        return TfidfFeatures(vectorizer_options(backbone), max_terms=learned_terms(backbone), missing=missing)
    if fitted_on_texts(backbone):
        return fitted_backbone(config, features_of(config), dataset)
    return built_frozen(backbone, dataset.input_shape)


def fitted_on_texts(backbone: Backbone) -> bool:
    """Whether the backbone is fitted to the training texts rather than run (``tfidf``)."""
    return bool(getattr(models.model_class(backbone.name), "fitted_on_texts", False))


def tfidf_dataset(part: FrozenFeatures, dataset: Any) -> FeatureDataset:
    """``dataset`` seen through its fitted TF-IDF: each split's TF-IDF entries (a learned
    projection) or its SVD's features (from the feature cache)."""
    module, matrices, record = fitted_tfidf(part, dataset)
    folder = cache_root(part.cache_dir) / "features"
    if module.max_terms is not None:
        started = time.perf_counter()
        features = {
            name: (term_entries(getattr(matrices, name), module.max_terms), {"reused": matrices.reused})
            for name in SPLIT_NAMES
            if getattr(matrices, name) is not None
        }
        record["entries"]["seconds"] = round(time.perf_counter() - started, 3)
    else:
        features = tfidf_split_features(module, matrices, folder, part.progress)
    splits = {
        name: Split(features[name][0], getattr(dataset, name).labels, origins=getattr(dataset, name).origins)
        if name in features
        else None
        for name in SPLIT_NAMES
    }
    frozen = {
        "backbone": part.backbone.name,
        "features": module.out_features,
        "input_shape": list(dataset.input_shape),
        "folder": str(folder),
        "splits": {name: info for name, (_, info) in features.items()},
        **record,
    }
    if module.max_terms is None:
        return feature_dataset(dataset, splits, frozen)
    return feature_dataset(dataset, splits, frozen, TermDataset, terms=matrices.vectorizer.width)


def built_frozen(backbone: Backbone, input_shape: tuple[int, ...]) -> nn.Module:
    """The named model of ``backbone``, its random draws seeded by :data:`FROZEN_BACKBONE_SEED`
    (the run's own random state is left as it was), its weights fixed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FROZEN_BACKBONE_SEED)
        model = backbone.named(input_shape)
    model.requires_grad_(False)
    return model


@torch.inference_mode()
def split_features(
    backbone: nn.Module,
    split: Any,
    task: Task,
    device: torch.device,
    part: FrozenFeatures,
    normalise: Augment | None,
    label: str,
) -> Tensor:
    """The backbone's features of every example of ``split``, float32 ``(N, d)`` on the CPU, in the
    split's order. Texts go through in order of length (each batch cut to its longest text by the
    task), images in order; ``eval_batch_size`` at a time."""
    lengths = getattr(split, "lengths", None)
    order = torch.argsort(lengths.cpu(), stable=True) if lengths is not None else torch.arange(len(split))
    autocast = torch.bfloat16 if part.precision == "bf16" else None
    chunks = []
    batches = order.split(part.batch_size)
    shown = draws_bar(part.progress)
    for index in tqdm(batches, desc=label, unit="batch", disable=not shown, leave=False):
        inputs, _ = task.batch(split, index.to(split.labels.device))
        inputs = inputs.to(device)
        if normalise is not None:
            inputs = normalise(inputs, train=False)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            features = backbone(inputs)
        if features.dim() != 2:
            raise ValueError(
                f"model {part.backbone.name!r} gave features of shape {tuple(features.shape)}; "
                "a frozen backbone must give (N, d)"
            )
        chunks.append(features.float().cpu())
    features = torch.cat(chunks)
    in_order = torch.empty_like(features)
    in_order[order] = features
    return in_order


def fitted_backbone(config: RunConfig, part: FrozenFeatures, dataset: Any) -> nn.Module:
    """The fitted representation (``tfidf``) of a run of ``config``, fitted on ``dataset``'s texts,
    or on the run's data read again where ``dataset`` keeps none (a prediction); an empty one,
    which a bundle's saved buffers fill, where that data cannot be read here."""
    if not getattr(dataset, "texts", None):
        try:
            dataset = load_run_data(config)
        except (DataError, OSError, ValueError) as error:
            return TfidfFeatures(
                vectorizer_options(part.backbone), max_terms=learned_terms(part.backbone), missing=str(error)
            )
    return fitted_tfidf(part, dataset)[0]


def feature_dataset(
    dataset: Any,
    splits: dict[str, Any],
    frozen: dict[str, Any],
    kind: type[FeatureDataset] = FeatureDataset,
    **extra: Any,
) -> FeatureDataset:
    """``dataset`` with its splits' features for inputs, its classes, noise and details kept, and
    ``frozen`` (what made the features) recorded among the details; a ``kind`` of feature data set
    with its ``extra`` fields."""
    return kind(
        dataset.name,
        splits["train"],  # type: ignore[arg-type]
        splits["dev"],
        splits["test"],  # type: ignore[arg-type]
        list(dataset.class_names),
        yields=dataset.yields,
        details={**getattr(dataset, "details", {}), "frozen": frozen},
        noise=getattr(dataset, "noise", None),
        **extra,
    )
