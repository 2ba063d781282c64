"""8x8 patches of scikit-learn's two bundled photographs: an out-of-distribution set for the digits.

Like the digits, it needs no file and no network, so the demo can ask how well a classifier of
digits tells them from something else (``ood: [{data: patches}]``).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Dataset, Split
from .registry import DataRequest, register

#: 32x32 crops, each cut into 4x4 blocks whose means are the 8x8 pixels: as the digits were made
#: from their 32x32 bitmaps.
CROP = 32
BLOCK = 4
SPLIT_SIZES = {"train": 600, "dev": 300, "test": 300}


def load_patches(seed: int = 0) -> Dataset:
    """1,200 grey 8x8 patches (N, 1, 8, 8) in [0, 1] of china.jpg and flower.jpg, one class
    (``photo``): 600 train / 300 dev / 300 test, from crops at ``numpy.random.RandomState(seed)``
    positions, alternating between the two photographs."""
    # lazy: scikit-learn takes seconds to import and only this function needs it
    from sklearn.datasets import load_sample_images

    photos = [_grey(image) for image in load_sample_images().images]
    total = sum(SPLIT_SIZES.values())
    positions = np.random.RandomState(seed)
    patches = np.empty((total, 1, CROP // BLOCK, CROP // BLOCK), dtype=np.float32)
    for i in range(total):
        photo = photos[i % len(photos)]
        top = positions.randint(0, photo.shape[0] - CROP + 1)
        left = positions.randint(0, photo.shape[1] - CROP + 1)
        crop = photo[top : top + CROP, left : left + CROP]
        patches[i, 0] = crop.reshape(CROP // BLOCK, BLOCK, CROP // BLOCK, BLOCK).mean(axis=(1, 3))
    splits, start = {}, 0
    for name, size in SPLIT_SIZES.items():
        chosen = torch.from_numpy(patches[start : start + size].copy())
        splits[name] = Split(chosen, torch.zeros(size, dtype=torch.int64))
        start += size
    return Dataset(name="patches", class_names=["photo"], **splits)


def _grey(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 photograph as grey levels in [0, 1] (ITU-R 601 luma), float32."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float64)
    return (image.astype(np.float64) @ weights / 255.0).astype(np.float32)


@register("patches", yields="images")
def _patches(request: DataRequest) -> Dataset:
    return load_patches().limited(request.max_train_pairs)
