"""Batched, seeded image augmentation on whatever device the batch lives on.

The paper's CIFAR protocols (cifar10-resnet8, cifar100-resnet18, after the released code's
torchvision pipeline) use a random 32 x 32 crop of the image zero-padded by 4, a horizontal flip
with probability 1/2, then per-channel normalisation. torchvision applies these to one PIL image at
a time; here each is one tensor operation over the whole batch, so the data can stay on the GPU
and the batch size costs no Python work. Randomness comes only from the ``generator`` passed in,
so a trainer that owns a seeded generator gets the same augmentations on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: Per-channel mean and std of the CIFAR training images used by the released code.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _check_images(images: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")


def crop_offsets(
    batch: int, padding: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> Tensor:
    """Draw the (row, column) offsets ``random_crop`` uses: int64 (batch, 2) in [0, 2 * padding].

    Exposed so that tests (and anyone replaying a crop) can draw the same numbers from a generator
    in the same state. The numbers are drawn on the generator's device (a generator can draw only
    there; without one, on ``device``) and returned on ``device``.
    """
    draw = generator.device if generator is not None else (device or torch.device("cpu"))
    offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator, device=draw)
    return offsets if device is None else offsets.to(device)


def random_crop(images: Tensor, padding: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Random crop of each image, of its own size, out of the image zero-padded by ``padding``.

    torchvision's ``RandomCrop(size, padding)`` for a whole batch (N, C, H, W): every image gets
    its own offset, drawn as by ``crop_offsets``. One gather, no loop over the images.
    """
    _check_images(images)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = crop_offsets(n, padding, generator, images.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # (N, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # (N, W)
    batch_idx = torch.arange(n, device=images.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]


def flip_mask(
    batch: int, p: float = 0.5, generator: torch.Generator | None = None, device: torch.device | None = None
) -> Tensor:
    """Draw which images ``random_horizontal_flip`` flips: bool (batch,), each True with probability p."""
    draw = generator.device if generator is not None else (device or torch.device("cpu"))
    mask = torch.rand(batch, generator=generator, device=draw) < p
    return mask if device is None else mask.to(device)


def random_horizontal_flip(
    images: Tensor, generator: torch.Generator | None = None, p: float = 0.5
) -> Tensor:
    """Mirror each image left-right with probability ``p`` (torchvision's ``RandomHorizontalFlip``)."""
    _check_images(images)
    mask = flip_mask(images.shape[0], p, generator, images.device)
    return torch.where(mask[:, None, None, None], images.flip(-1), images)


def normalize(images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """``(images - mean) / std`` per channel, as torchvision's ``Normalize``; returns a new tensor."""
    _check_images(images)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(1, -1, 1, 1)
    if mean_t.shape[1] != images.shape[1] or std_t.shape[1] != images.shape[1]:
        raise ValueError(
            f"mean and std need one value per channel ({images.shape[1]}), got {mean_t.shape[1]} and "
            f"{std_t.shape[1]}"
        )
    return (images - mean_t) / std_t


@dataclass(frozen=True)
class Augment:
    """The training-batch transform: crop (if ``crop_padding``), flip (if ``flip``), normalise.

    ``augment(images, generator)`` transforms a training batch; ``augment(images, train=False)``
    applies only the deterministic part (normalisation), which evaluation batches need too.
    ``Augment.cifar()`` is the setting of the paper's CIFAR protocols. Normalisation comes last, so
    the crop pads with black pixels, as torchvision's pipeline (crop, ToTensor, Normalize) does.
    """

    crop_padding: int = 0
    flip: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.mean is not None and self.std is not None:
            # Frozen dataclass: normalise lists from configs to tuples so instances stay hashable.
            object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
            object.__setattr__(self, "std", tuple(float(s) for s in self.std))
            if len(self.mean) != len(self.std):
                raise ValueError(f"mean has {len(self.mean)} values, std {len(self.std)}")
            if any(s <= 0 for s in self.std):
                raise ValueError(f"std must be positive, got {self.std}")

    @classmethod
    def cifar(cls) -> Augment:
        """Random crop with padding 4, horizontal flip, CIFAR mean/std (the released CIFAR code)."""
        return cls(crop_padding=4, flip=True, mean=CIFAR_MEAN, std=CIFAR_STD)

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None, *, train: bool = True
    ) -> Tensor:
        """Transform a batch (N, C, H, W); random steps draw from ``generator`` only when ``train``."""
        if train:
            if self.crop_padding:
                images = random_crop(images, self.crop_padding, generator)
            if self.flip:
                images = random_horizontal_flip(images, generator)
        if self.mean is not None and self.std is not None:
            images = normalize(images, self.mean, self.std)
        return images
