"""Containers shared by every dataset loader, and the error they raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .origins import RowOrigins


class DataError(ValueError):
    """A data file is missing, malformed or fails verification.

    The message always names the file (or the places searched) and says how to get a good copy.
    """


@dataclass
class Split:
    """One split of a data set: ``inputs`` (N, ...) and ``labels``, int64 class ids (N,) or, for
    multi-label data, bool tag sets (N, K): True where example n carries tag k.

    The inputs are whatever the task's backbone reads: images float32 (N, C, H, W) in [0, 1] for
    the image data sets, token ids or precomputed features for others. ``origins`` says where each
    row came from (its file and its row there), where the split was read from files.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    #: Each row's file and its row number there (:class:`~labelemb.data.origins.RowOrigins`), for
    #: what names a row to a person; None where the split's own order is all there is to go by.
    origins: RowOrigins | None = field(default=None, kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Catch loader bugs here rather than as a shape error deep inside a training step.
        if self.inputs.dim() < 1:
            raise ValueError("Split.inputs must lead with the example dimension (N, ...), got a scalar")
        class_ids = self.labels.dim() == 1 and self.labels.dtype == torch.int64
        tag_sets = self.labels.dim() == 2 and self.labels.dtype == torch.bool
        if not (class_ids or tag_sets):
            raise ValueError(
                "Split.labels must be int64 class ids of shape (N,) or bool tag sets of shape (N, K), "
                f"got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise ValueError(f"Split has {self.inputs.shape[0]} inputs but {self.labels.shape[0]} labels")
        if self.origins is not None and len(self.origins) != self.labels.shape[0]:
            raise ValueError(f"Split has {len(self.origins)} row origins for {self.labels.shape[0]} rows")

    @property
    def images(self) -> torch.Tensor:
        """The inputs of an image split, (N, C, H, W)."""
        return self.inputs

    @property
    def multi_label(self) -> bool:
        """Whether the labels are tag sets, bool (N, K), rather than class ids (N,)."""
        return self.labels.dim() == 2

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Split:
        """This split with its tensors on ``device``."""
        return Split(self.inputs.to(device), self.labels.to(device), origins=self.origins)

    def first(self, count: int) -> Split:
        """The first ``count`` examples (all of them if there are fewer)."""
        return Split(self.inputs[:count], self.labels[:count], origins=self.first_origins(count))

    def first_origins(self, count: int) -> RowOrigins | None:
        """The origins of the first ``count`` examples (None where the split has none)."""
        return None if self.origins is None else self.origins.take(slice(0, count))


@dataclass
class Dataset:
    """A classification data set: train, optional dev, and test splits plus class names.

    ``yields`` says what the inputs are (``images``: float32 (N, C, H, W) in [0, 1], or uint8 (N, C,
    H, W) read from an image cache, made float a batch at a time); it chooses the task and the
    backbones that can read them.
    """

    name: str
    train: Split
    dev: Split | None
    test: Split
    class_names: list[str]
    yields: str = "images"
    #: What a run's summary records of the data beyond its name (a user's files: their format, a
    #: digest of their content, a dev split carved from train).
    details: dict[str, Any] = field(default_factory=dict)
    #: Images: the largest value the stored pixels can hold, which the loader divided them by to
    #: make floats in [0, 1] (255 for 8-bit images; 16 for scikit-learn's digits, counts 0..16).
    pixel_scale: float = 255.0
    #: Each training (and dev) example's row in the data set's training file, where dev was carved
    #: from it (MNIST's first 5,000 images; a user's file with ``dev_fraction``): what a file of
    #: noisy labels, one per row of the training file, is matched by. Empty: train is the file, in
    #: its order, and dev (if any) a file of its own.
    file_rows: dict[str, torch.Tensor] = field(default_factory=dict)
    #: The number of rows of that training file (0: train's size, as ``file_rows`` is empty).
    training_file_size: int = 0
    #: The training labels' noise (:class:`~labelemb.data.label_noise.NoisyLabels`): their clean
    #: labels, which were flipped, and how; None where the labels are taken as true.
    noise: Any = None

    def __post_init__(self) -> None:
        if self.yields == "images":
            for split_name, split in (("train", self.train), ("dev", self.dev), ("test", self.test)):
                if split is not None and (
                    split.inputs.dim() != 4 or split.inputs.dtype not in (torch.float32, torch.uint8)
                ):
                    raise ValueError(
                        f"dataset {self.name!r}: {split_name} images must be float32 in [0, 1] or uint8, "
                        f"(N, C, H, W), got {split.inputs.dtype} {tuple(split.inputs.shape)}"
                    )
        shape = tuple(self.train.inputs.shape[1:])
        for split_name, split in (("dev", self.dev), ("test", self.test)):
            if split is not None and tuple(split.inputs.shape[1:]) != shape:
                raise ValueError(
                    f"dataset {self.name!r}: {split_name} inputs have shape "
                    f"{tuple(split.inputs.shape[1:])}, train inputs {shape}"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of ``class_names``)."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, (C, H, W) for an image."""
        return tuple(int(d) for d in self.train.inputs.shape[1:])

    @property
    def multi_label(self) -> bool:
        """Whether each example carries a set of tags (bool (N, K) labels, K = ``num_classes``)."""
        return self.train.multi_label

    def limited(self, count: int | None) -> Dataset:
        """This data set training on its first ``count`` examples only (all of them for None)."""
        if count is not None:
            self.train = self.train.first(count)
            if "train" in self.file_rows:
                self.file_rows = {**self.file_rows, "train": self.file_rows["train"][:count]}
        return self


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 ones (a memory-mapped image cache) divided by 255 where
    they are, a batch at a time, so the data set itself stays 4 times smaller than as floats."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images


def epoch_permutation(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The training order of one epoch, a function of (seed, epoch) alone.

    Deriving it afresh each epoch, instead of drawing from one running generator, lets a run
    killed mid-epoch resume with exactly the order it would have had.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator)


def labels_tensor(labels: np.ndarray) -> torch.Tensor:
    """Labels as a split holds them: class ids as int64 (N,), tag sets (bool (N, K)) as they are."""
    array = np.asarray(labels)
    if array.ndim == 2 and array.dtype == np.bool_:
        return torch.from_numpy(np.ascontiguousarray(array))
    return torch.from_numpy(array.astype(np.int64))


def check_labels(labels: np.ndarray | torch.Tensor, num_classes: int, source: str) -> None:
    """Raise DataError if any label lies outside [0, num_classes), or tag sets (bool (N, K)) are
    not ``num_classes`` wide; ``source`` names the file."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim == 2:
        _check_tag_sets(arr, num_classes, source)
        return
    if arr.size == 0:
        return
    bad = (arr < 0) | (arr >= num_classes)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        first = int(np.flatnonzero(bad.ravel())[0])
        raise DataError(
            f"{source}: {n_bad} label(s) outside [0, {num_classes}) "
            f"(min {arr.min()}, max {arr.max()}; first bad at index {first}, "
            f"value {arr.ravel()[first]}). The file is corrupt or not the expected dataset: "
            "delete it and re-download, or pass --data-dir to a folder with the original files."
        )


def _check_tag_sets(arr: np.ndarray, num_tags: int, source: str) -> None:
    if arr.dtype != np.bool_:
        raise DataError(
            f"{source}: labels of shape {arr.shape} are read as tag sets, which are true/false, not "
            f"{arr.dtype}; give class ids (N,), or tag sets as a bool (N, K) array"
        )
    if arr.shape[1] != num_tags:
        raise DataError(f"{source}: tag sets of {arr.shape[1]} tags for {num_tags} tag names")
