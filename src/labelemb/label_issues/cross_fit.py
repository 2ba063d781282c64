"""Out-of-sample probabilities by K-fold cross-fitting: each fold's model trained on the other
folds, through the harness's own trainer (:func:`labelemb.training.train`, the run's recipe: its
method, backbone, schedule, checks and selected weights), then asked for the probabilities of the
rows it did not see (:func:`labelemb.load`, the run's fitted temperature applied).

A tag set's probabilities are each tag's own, the sigmoid of the fold model's logit (the
predictor's, as for any multi-label run); each row also keeps its fold run's tag threshold (chosen
on its dev split), which says which tags that model predicts.

The folds train one after another: the batched trainer stacks runs that share their training
rows (seeds), and the folds' rows differ. Each fold's run is a run folder of its own, so that an
interrupted search resumes at its fold, and a finished fold is read back, not trained again.

A run on a frozen backbone (``model.freeze``) has its features computed once, for every row
(:func:`frozen_features`, the feature cache's), before the folds: each fold's run trains its head
on them, and its held-out rows are scored by that head, so the backbone runs once, not
once a fold (a text data set's features keep its vocabulary, which the trainer's text task reads).
The same features serve the k-nearest-neighbour vote (:mod:`.neighbours`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..assembly import FeatureDataset, freeze_features, resolve_device
from ..config import RunConfig
from ..data import Dataset, Split
from ..predict import Predictor, load
from ..progress import draws_bar
from ..tasks import build_task
from ..training import train
from .folds import assign_folds, fold_dataset


@dataclass(frozen=True)
class CrossFit:
    """Each training row's out-of-sample probabilities (N, m), the fold that held it out, each fold's
    run folder and the seconds the folds took (training and scoring); for tag sets, each row's
    fold run's tag threshold (``thresholds``, NaN where a run records none)."""

    probabilities: np.ndarray
    fold: np.ndarray
    run_dirs: list[Path]
    seconds: float
    thresholds: np.ndarray | None = None


def fold_config(config: RunConfig, folder: Path, k: int) -> RunConfig:
    """The run of fold ``k`` (counted from 1): ``config`` written under ``folder``/folds/fold{k}."""
    experiment = (folder / "folds" / f"fold{k}").relative_to(config.output_dir).as_posix()
    return config.model_copy(update={"experiment": experiment})


def cross_fit(
    config: RunConfig, dataset: Dataset, folds: int, folder: Path, *, progress: bool = True
) -> CrossFit:
    """Train ``folds`` fold models of ``config`` on ``dataset`` (its training labels as given) and
    score each on its held-out rows (see the module docstring). ``folder`` holds the folds' runs;
    the folds are drawn with the config's seed."""
    start = time.perf_counter()
    labels = dataset.train.labels.cpu().numpy()
    fold = assign_folds(labels, folds, config.seed)
    probabilities = np.zeros((len(labels), dataset.num_classes), dtype=np.float64)
    thresholds = np.full(len(labels), np.nan) if dataset.multi_label else None
    run_dirs = []
    features = isinstance(dataset, FeatureDataset)
    bar = tqdm(total=folds, desc="cross-fitting", unit="fold", disable=not draws_bar(progress))
    with bar:
        for k in range(folds):
            held = np.flatnonzero(fold == k)
            run = fold_config(config, folder, k + 1)
            data = fold_dataset(dataset, held)
            train(run, dataset=data, progress=progress)
            predictor = load(run.run_dir(), device=resolve_device(run.train.device))
            probabilities[held] = held_out_probabilities(predictor, data.test, features)
            if thresholds is not None and predictor.threshold is not None:
                thresholds[held] = predictor.threshold
            run_dirs.append(run.run_dir())
            bar.update(1)
    return CrossFit(probabilities, fold, run_dirs, time.perf_counter() - start, thresholds)


@dataclass
class TextFeatureDataset(FeatureDataset):
    """A text data set's features, with what the trainer's text task reads of the texts beside
    them (its vocabulary, the cap on a text's tokens, the texts cut to it), which a
    :class:`FeatureDataset` does not carry: the folds of a frozen text encoder train on it."""

    vocabulary: Any = field(default=None, kw_only=True)
    max_text_tokens: int | None = field(default=None, kw_only=True)
    cut_texts: dict[str, int] = field(default_factory=dict, kw_only=True)


def frozen_features(config: RunConfig, dataset: Dataset) -> FeatureDataset | None:
    """``dataset`` seen through the config's frozen backbone, every split's features computed once
    (or read from the feature cache); None where the config freezes no backbone. A text data set's
    features keep what its task reads of the texts (:class:`TextFeatureDataset`)."""
    if not config.model.freeze:
        return None
    device = resolve_device(config.train.device)
    features = freeze_features(config, dataset, build_task(config, dataset), device)
    if not hasattr(dataset, "vocabulary"):
        return features
    shared = {part.name: getattr(features, part.name) for part in fields(FeatureDataset)}
    texts = {name: getattr(dataset, name) for name in ("vocabulary", "max_text_tokens", "cut_texts")}
    return TextFeatureDataset(**shared, **texts)


@torch.inference_mode()
def held_out_probabilities(predictor: Predictor, split: Split, features: bool) -> np.ndarray:
    """The probabilities of a fold's held-out rows: the run's network on them, or, where they are
    a frozen backbone's ``features``, its head (dense layer and method) on them; softmax with the
    run's temperature either way."""
    if not features:
        return predictor.predict_proba(split)
    classifier, parts, device = predictor.model, [], predictor.device
    for rows in split.inputs.split(predictor.batch_size):
        # In bf16 where the run evaluated in it, as its predictions are made.
        with torch.autocast(device.type, dtype=predictor.autocast, enabled=predictor.autocast is not None):
            parts.append(classifier.method.logits(classifier.model(rows.to(device))).float().cpu())
    return predictor.probabilities(torch.cat(parts)).numpy()
