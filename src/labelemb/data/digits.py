"""scikit-learn's bundled 8x8 digits: the default dataset, needing no file and no network."""

from __future__ import annotations

import numpy as np
import torch

from .base import Dataset, Split
from .registry import DataRequest, register

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEST_SIZE = 300
DEV_SIZE = 300


def load_digits(seed: int = 0) -> Dataset:
    """Load the 1,797 8x8 digits as (N, 1, 8, 8) in [0, 1]; 1,197 train / 300 dev / 300 test.

    The split is a fixed ``numpy.random.RandomState(seed)`` permutation: its first 300 indices
    are test, the next 300 dev, the rest train.
    """
    # lazy: scikit-learn takes seconds to import and only this function needs it
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # Pixel values are integers 0..16 (counts of set pixels in 4x4 blocks of the 32x32 bitmaps).
    images = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    perm = np.random.RandomState(seed).permutation(len(labels))
    test_idx = perm[:TEST_SIZE]
    dev_idx = perm[TEST_SIZE : TEST_SIZE + DEV_SIZE]
    train_idx = perm[TEST_SIZE + DEV_SIZE :]

    def split(idx: np.ndarray) -> Split:
        return Split(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]))

    return Dataset(
        name="digits",
        train=split(train_idx),
        dev=split(dev_idx),
        test=split(test_idx),
        class_names=list(DIGIT_NAMES),
        pixel_scale=16.0,
    )


@register("digits", yields="images")
def _digits(request: DataRequest) -> Dataset:
    return load_digits().limited(request.max_train_pairs)
