"""A data set's training labels made noisy as the config's ``noise:`` says, and the record of it.

The noise is drawn over the rows of the data set's training file (dev carved from it included), in
the file's order, from the noise's own seed: the same rows flip whatever the run's seed, method or
``max_train_pairs``. Dev keeps the noisy labels unless ``noise.dev`` is ``clean``; the test split
is never touched. The clean labels stay beside the noisy ones (:class:`NoisyLabels`), so that a
run can measure what the noise did.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..base import DataError, Dataset, as_float_images
from ..files.paths import find_file
from ..registry import DataRequest
from .files import check_labels_fit, read_label_file, read_numbers
from .instance import instance_flip_probabilities
from .options import NoiseConfig
from .tags import remove_tags
from .transitions import (
    NoiseError,
    check_matrix,
    draw_from_rows,
    flip_with_matrix,
    pairflip_matrix,
    realised_matrix,
    symmetric_matrix,
)

#: The splits whose labels noise may change: never test.
NOISY_SPLITS = ("train", "dev")


@dataclass
class NoisyLabels:
    """The clean labels of the splits a run's noise changed, and how it was made.

    ``clean[split]`` is aligned with ``dataset.<split>.labels`` (the noisy ones, trained on);
    ``transition`` is the matrix the noise was drawn from where there is one (class-conditional
    kinds), ``realised`` the one the training labels show; ``description`` is what the run records.
    """

    clean: dict[str, Tensor]
    realised: np.ndarray
    transition: np.ndarray | None
    description: dict[str, Any] = field(default_factory=dict)

    def flipped(self, split: str, labels: Tensor) -> Tensor:
        """Which of ``split``'s examples carry a wrong label (bool, on ``labels``' device)."""
        return labels != self.clean[split].to(labels.device)

    def tensors(self, dataset: Any) -> dict[str, Tensor]:
        """What a run's folder keeps of the noise: each noisy split's clean and noisy labels (their
        difference says which examples were flipped), the realised matrix and the one drawn from."""
        kept = {"realised": torch.from_numpy(self.realised)}
        if self.transition is not None:
            kept["transition"] = torch.from_numpy(np.asarray(self.transition, dtype=np.float64))
        for split, clean in self.clean.items():
            kept[f"{split}_clean"] = clean.to(torch.int32).cpu()
            kept[f"{split}_noisy"] = getattr(dataset, split).labels.to(torch.int32).cpu()
        return kept

    def rate(self, split: str, labels: Tensor) -> float:
        """The share of ``split``'s labels that are wrong, in percent."""
        return 100.0 * float(self.flipped(split, labels).float().mean()) if labels.numel() else 0.0


class NoisyTags(NoisyLabels):
    """:class:`NoisyLabels` of tag sets (``remove_tags``, :mod:`.tags`): ``clean[split]`` bool
    ``(N, K)``; ``realised`` ``(K, 2)``, each tag's share of the rows carrying it that are not given
    it and of the rows not carrying it that are; no transition matrix."""

    def rate(self, split: str, labels: Tensor) -> float:
        """The share of ``split``'s rows whose tag set is wrong (a tag removed), in percent."""
        if not labels.numel():
            return 0.0
        return 100.0 * float(self.flipped(split, labels).any(dim=1).float().mean())


def add_label_noise(dataset: Any, noise: NoiseConfig, request: DataRequest) -> Any:
    """``dataset`` with its training (and, unless ``noise.dev`` is clean, dev) labels made noisy
    as ``noise`` says, and ``dataset.noise`` the record (:class:`NoisyLabels`). Refused, in one
    line, where labels cannot be made noisy (a sequence-to-sequence corpus, data that is noisy
    already) or the noise does not fit the data."""
    if not isinstance(dataset, Dataset):
        raise NoiseError(
            f"noise: makes class labels wrong; {getattr(dataset, 'name', 'this data set')} is a "
            "sequence-to-sequence corpus, whose targets are sequences: drop the noise section"
        )
    if dataset.noise is not None:
        raise NoiseError(
            f"noise: data set {dataset.name} carries its own noisy labels beside clean ones already; "
            "drop the noise section (or train on its clean labels without it)"
        )
    if dataset.multi_label != (noise.kind == "remove_tags"):
        raise NoiseError(
            f"noise kind remove_tags removes tags from tag sets; data set {dataset.name} gives each "
            "example one class label: use symmetric, pairflip, matrix, instance or file"
            if not dataset.multi_label
            else f"noise kind {noise.kind} flips each example's one class label; data set {dataset.name} "
            "gives each example a set of tags (multi-label): use kind remove_tags, or drop the noise section"
        )
    if dataset.multi_label:
        return _tags_removed(dataset, noise)
    dataset = copy.copy(dataset)  # the splits are replaced, never changed: the caller's data set stays clean
    rows = _file_rows(dataset, noise)
    covered = max(int(part.max()) + 1 if part.numel() else 0 for part in rows.values())
    size = max(dataset.training_file_size, covered)
    # Rows no split holds (cut by max_train_pairs) are drawn for too, as class 0: every row
    # covered draws the same whether or not the others are trained on.
    clean_file = np.zeros(size, dtype=np.int64)
    for split, part in rows.items():
        clean_file[part.numpy()] = getattr(dataset, split).labels.numpy()
    generator = np.random.default_rng(noise.seed)
    transition, noisy_file, described = _draw(dataset, noise, request, rows, clean_file, generator)
    clean: dict[str, Tensor] = {}
    for split, part in rows.items():
        if split == "dev" and noise.dev == "clean":
            continue  # drawn all the same, so that train's labels do not depend on this choice
        original = getattr(dataset, split)
        clean[split] = original.labels
        noisy = torch.from_numpy(noisy_file[part.numpy()])
        setattr(dataset, split, dataclasses.replace(original, labels=noisy))
    realised = realised_matrix(clean["train"].numpy(), dataset.train.labels.numpy(), dataset.num_classes)
    record = NoisyLabels(clean, realised, transition)
    record.description = {
        **noise.model_dump(mode="json", exclude_defaults=False),
        **described,
        "realised_rate": {
            split: round(record.rate(split, getattr(dataset, split).labels), 4) for split in clean
        },
    }
    dataset.noise = record
    dataset.details = {**dataset.details, "noise": record.description}
    return dataset


def _tags_removed(dataset: Any, noise: NoiseConfig) -> Any:
    """``dataset`` (tag sets) with tags removed as ``noise`` says (:func:`.tags.remove_tags`) and
    ``dataset.noise`` the record (:class:`NoisyTags`)."""
    dataset, clean, realised = remove_tags(dataset, noise, _file_rows(dataset, noise))
    record = NoisyTags(clean, realised, None)
    record.description = {
        **noise.model_dump(mode="json", exclude_defaults=False),
        "realised_rate": {
            split: round(record.rate(split, getattr(dataset, split).labels), 4) for split in clean
        },
        "removed_tags": {
            split: int(record.flipped(split, getattr(dataset, split).labels).sum()) for split in clean
        },
    }
    dataset.noise = record
    dataset.details = {**dataset.details, "noise": record.description}
    return dataset


def carried_noise(dataset: Any, clean: dict[str, np.ndarray], source: str) -> NoisyLabels:
    """The record of the labels a data set carries beside their true ones (a table's true-label
    column: real noise, such as a crowd's): ``clean[split]`` is aligned with ``dataset.<split>``'s
    labels, train's required, dev's where the data has them."""
    kept = {
        split: torch.from_numpy(np.asarray(clean[split], dtype=np.int64))
        for split in NOISY_SPLITS
        if split in clean
    }
    realised = realised_matrix(kept["train"].numpy(), dataset.train.labels.numpy(), dataset.num_classes)
    record = NoisyLabels(kept, realised, None)
    record.description = {
        "kind": "carried",
        "source": source,
        "realised_rate": {
            split: round(record.rate(split, getattr(dataset, split).labels), 4) for split in kept
        },
    }
    return record


def _file_rows(dataset: Dataset, noise: NoiseConfig) -> dict[str, Tensor]:
    """Each noisy split's rows of the training file: the data set's own record, or train alone."""
    if dataset.file_rows:
        return {split: dataset.file_rows[split] for split in NOISY_SPLITS if split in dataset.file_rows}
    if noise.kind == "file" and (numbered := _rows_of_one_file(dataset)) is not None:
        return numbered
    rows = {"train": torch.arange(len(dataset.train))}
    # A labels file gives the training file's rows only: a dev split from a file of its own keeps its labels.
    if dataset.dev is not None and noise.kind != "file":
        # A dev split of its own: its rows follow the training file's, drawn with the same seed.
        rows["dev"] = torch.arange(len(dataset.train), len(dataset.train) + len(dataset.dev))
    return rows


def _rows_of_one_file(dataset: Dataset) -> dict[str, Tensor] | None:
    """Train's rows (and a dev carved from the same file, its rows) as numbered in the one file
    train was read from (its origins), so that a labels file of one label per row of that file
    fits however the rows were split; None where train comes from several files or names none.
    Only a labels file reads this: the drawn kinds keep their order, so that a seed draws the
    same labels it drew before row origins were recorded."""
    origins = dataset.train.origins
    if origins is None or origins.rows is None or len(origins.files) != 1:
        return None
    rows = {"train": torch.from_numpy(origins.rows - 1)}
    dev = dataset.dev.origins if dataset.dev is not None else None
    if dev is not None and dev.rows is not None and dev.files == origins.files:
        rows["dev"] = torch.from_numpy(dev.rows - 1)
    return rows


def _draw(
    dataset: Dataset,
    noise: NoiseConfig,
    request: DataRequest,
    rows: dict[str, Tensor],
    clean_file: np.ndarray,
    generator: np.random.Generator,
) -> tuple[np.ndarray | None, np.ndarray, dict[str, Any]]:
    """(the transition matrix drawn from, or None; the noisy labels of the training file's rows;
    what the run records of where they came from)."""
    m = dataset.num_classes
    if noise.kind in ("symmetric", "pairflip", "matrix"):
        if noise.kind == "symmetric":
            matrix = symmetric_matrix(m, float(noise.rate), noise.include_self)  # type: ignore[arg-type]
            described: dict[str, Any] = {}
        elif noise.kind == "pairflip":
            matrix = pairflip_matrix(m, float(noise.rate))  # type: ignore[arg-type]
            described = {}
        else:
            path = find_file(str(noise.matrix), request, "noise.matrix file", key="noise.matrix")
            matrix = check_matrix(read_numbers(path, "a transition matrix"), m, str(path))
            described = {"matrix_file": str(path)}
        return matrix, flip_with_matrix(clean_file, matrix, generator), described
    if noise.kind == "instance":
        inputs = _inputs_in_file_order(dataset, rows, len(clean_file))
        probabilities = instance_flip_probabilities(
            inputs,
            clean_file,
            m,
            float(noise.rate),
            generator,
            std=noise.std,  # type: ignore[arg-type]
        )
        return None, draw_from_rows(probabilities, generator), {}
    path = find_file(str(noise.labels), request, "noise.labels file", key="noise.labels")
    noisy = read_label_file(path, m)
    covered = np.concatenate([part.numpy() for part in rows.values()])
    agreement = check_labels_fit(path, noisy, clean_file, m, covered)
    return None, noisy, {"labels_file": str(path), "agreement_with_clean": round(100 * agreement, 4)}


def _inputs_in_file_order(dataset: Dataset, rows: dict[str, Tensor], size: int) -> np.ndarray:
    """Every example's input as a flat float vector, in the training file's order."""
    train = dataset.train.inputs
    if train.dtype not in (torch.float32, torch.uint8) or dataset.yields != "images":
        raise NoiseError(
            f"noise kind instance reads each example's input as a vector of numbers; {dataset.name} holds "
            f"{dataset.yields}: use a class-conditional kind (symmetric, pairflip, matrix) or a labels file"
        )
    width = int(np.prod(train.shape[1:]))
    flat = np.zeros((size, width), dtype=np.float32)
    for split, part in rows.items():
        inputs = as_float_images(getattr(dataset, split).inputs).reshape(len(part), -1)
        flat[part.numpy()] = inputs.numpy()
    return flat


__all__ = ["DataError", "NoisyLabels", "add_label_noise"]
