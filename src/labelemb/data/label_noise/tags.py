"""Noise on tag sets (bool ``(N, K)`` labels): tags removed from rows at random, the kind
``remove_tags`` (``noise: {kind: remove_tags, rate: 0.1}``), the clean tag sets kept as the truth.

Each row of the training file (dev carved from it included), in the file's order, is drawn for
from the noise's own seed, as the class-label kinds are: with probability ``rate`` it loses one of
its tags, chosen uniformly among those it carries (a row that carries none loses nothing). Two
numbers are drawn for every row whether or not it is trained on, so the same rows lose the same
tags whatever the run's seed, method or ``max_train_pairs``. A row left without a tag stays in the
data, its tag set empty. Only tags go missing: no tag is added, so every wrong (row, tag) pair is
a tag the row carries but is not given.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .options import NoiseConfig


def draw_removed(clean: np.ndarray, rate: float, generator: np.random.Generator) -> np.ndarray:
    """``clean`` tag sets (bool ``(N, K)``) with one tag removed from each row that a draw of
    probability ``rate`` picks (see the module docstring)."""
    picked = generator.random(len(clean)) < rate
    which = generator.random(len(clean))  # drawn for every row: the draws stay aligned with the file
    noisy = clean.copy()
    for i in np.flatnonzero(picked):
        carried = np.flatnonzero(clean[i])
        if len(carried):
            noisy[i, carried[int(which[i] * len(carried))]] = False
    return noisy


def realised_tag_noise(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Each tag's ``(K, 2)`` realised noise: P(not given | carried), P(given | not carried)."""
    carried, given = clean.astype(bool), noisy.astype(bool)
    rates = np.zeros((clean.shape[1], 2), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates[:, 0] = np.nan_to_num((carried & ~given).sum(axis=0) / carried.sum(axis=0))
        rates[:, 1] = np.nan_to_num((~carried & given).sum(axis=0) / (~carried).sum(axis=0))
    return rates


def remove_tags(
    dataset: Any, noise: NoiseConfig, rows: dict[str, Tensor]
) -> tuple[Any, dict[str, Tensor], np.ndarray]:
    """A copy of ``dataset`` (tag sets) with tags removed from its training rows (and dev's,
    unless ``noise.dev`` is clean) as ``noise`` says, ``rows`` each noisy split's rows of the
    training file; with the clean tag sets of the splits changed and the realised noise
    (:func:`realised_tag_noise`) of the training split."""
    dataset = copy.copy(dataset)  # the splits are replaced, never changed: the caller's data set stays clean
    covered = max(int(part.max()) + 1 if part.numel() else 0 for part in rows.values())
    size = max(dataset.training_file_size, covered)
    clean_file = np.zeros((size, dataset.num_classes), dtype=bool)
    for split, part in rows.items():
        clean_file[part.numpy()] = getattr(dataset, split).labels.cpu().numpy().astype(bool)
    generator = np.random.default_rng(noise.seed)
    noisy_file = draw_removed(clean_file, float(noise.rate), generator)  # type: ignore[arg-type]
    clean: dict[str, Tensor] = {}
    for split, part in rows.items():
        if split == "dev" and noise.dev == "clean":
            continue  # drawn all the same, so that train's tags do not depend on this choice
        original = getattr(dataset, split)
        clean[split] = original.labels
        noisy = torch.from_numpy(noisy_file[part.numpy()]).to(original.labels.dtype)
        setattr(dataset, split, dataclasses.replace(original, labels=noisy))
    realised = realised_tag_noise(clean["train"].cpu().numpy(), dataset.train.labels.cpu().numpy())
    return dataset, clean, realised
