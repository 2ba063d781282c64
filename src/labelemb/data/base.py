"""Containers shared by every dataset loader, and the error they raise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class DataError(ValueError):
    """A data file is missing, malformed or fails verification.

    The message always names the file (or the places searched) and says how to get a good copy.
    """


@dataclass
class Split:
    """One split of a dataset: images float32 (N, C, H, W) in [0, 1], labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        # Catch loader bugs here rather than as a shape error deep inside a training step.
        if self.images.dim() != 4:
            raise ValueError(f"Split.images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.images.dtype != torch.float32:
            raise ValueError(f"Split.images must be float32, got {self.images.dtype}")
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(
                f"Split.labels must be int64 of shape (N,), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(f"Split has {self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Split:
        """This split with its tensors on ``device``."""
        return Split(images=self.images.to(device), labels=self.labels.to(device))

    def first(self, count: int) -> Split:
        """The first ``count`` examples (all of them if there are fewer)."""
        return Split(images=self.images[:count], labels=self.labels[:count])


@dataclass
class Dataset:
    """A classification dataset: train, optional dev, and test splits plus class names."""

    name: str
    train: Split
    dev: Split | None
    test: Split
    class_names: list[str]

    def __post_init__(self) -> None:
        shape = tuple(self.train.images.shape[1:])
        for split_name, split in (("dev", self.dev), ("test", self.test)):
            if split is not None and tuple(split.images.shape[1:]) != shape:
                raise ValueError(
                    f"dataset {self.name!r}: {split_name} images have shape "
                    f"{tuple(split.images.shape[1:])}, train images {shape}"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of ``class_names``)."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one image, (C, H, W)."""
        return tuple(int(d) for d in self.train.images.shape[1:])


def check_labels(labels: np.ndarray | torch.Tensor, num_classes: int, source: str) -> None:
    """Raise DataError if any label lies outside [0, num_classes); ``source`` names the file."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
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
