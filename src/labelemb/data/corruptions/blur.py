"""Blurs: gaussian, glass and motion blur.

Definitions and settings of Mu & Gilmer 2019 (MNIST-C, Section 2; their corruptions.py), after
Hendrycks & Dietterich 2019 (ImageNet-C). Their settings are in pixels of a 28x28 image; ours are
multiplied by the image's mean side / 28, so a 28x28 image gets exactly theirs. Their blurs use
scikit-image's ``gaussian``, which is scipy's ``gaussian_filter`` with edges repeated (``nearest``);
their motion blur is ImageMagick's, written here with numpy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from .base import Corruption, register

MNIST_C = "Mu & Gilmer 2019, MNIST-C, Section 2; their corruptions.py"


def side_factor(image: np.ndarray) -> float:
    """How much larger ``image`` is than MNIST's 28x28: its mean side / 28."""
    return (image.shape[0] + image.shape[1]) / 2 / 28


def blur(image: np.ndarray, sigma: float, *, across_columns: bool = True) -> np.ndarray:
    """``image`` blurred by a gaussian of ``sigma`` pixels down its rows (and across its columns),
    never across its channels; edges repeated, as scikit-image's ``gaussian`` does."""
    return gaussian_filter(image, (sigma, sigma if across_columns else 0.0, 0.0), mode="nearest")


def gaussian_blur(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """A gaussian blur of standard deviation ``level`` pixels at 28x28 (ImageNet-C's gaussian blur;
    MNIST-C's code has it with these levels but leaves it out of its set). Not random."""
    return blur(image, level * side_factor(image))


def shuffle_locally(image: np.ndarray, reach: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """``image`` with its pixels swapped, ``rounds`` times, each with a neighbour up to ``reach``
    pixels away: MNIST-C's glass-blur loop, which visits the rows and columns inward of ``reach``
    from the last, swaps each with probability 1/2 and draws the neighbour's offset in
    [-reach, reach) on each axis. The swaps run in order (a pixel moved early may move again)."""
    height, width = image.shape[:2]
    visited_rows, visited_columns = np.arange(height - reach, reach, -1), np.arange(width - reach, reach, -1)
    rows, columns = (grid.ravel() for grid in np.meshgrid(visited_rows, visited_columns, indexing="ij"))
    where = np.arange(height * width).tolist()  # where[p]: the original pixel now at position p
    for _ in range(rounds):
        swapped = rng.random(rows.size) < 0.5
        row_steps, column_steps = rng.integers(-reach, reach, size=(2, rows.size))
        sources = (rows * width + columns)[swapped].tolist()
        targets = ((rows + row_steps) * width + columns + column_steps)[swapped].tolist()
        # one at a time, in their order: a vectorised swap would lose the chains of moves
        for source, target in zip(sources, targets):
            where[source], where[target] = where[target], where[source]
    return image.reshape(height * width, -1)[where].reshape(image.shape)


def glass_blur(image: np.ndarray, level: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's glass blur, ``level`` = (sigma, reach, rounds): a gaussian blur, its values cut
    down to 8 bits as theirs were, the pixels shuffled locally (:func:`shuffle_locally`), and the
    same blur again.

    On grey images their blur ran down the rows only: scikit-image's ``gaussian(multichannel=True)``
    took the columns of their 2-D 28x28 arrays for channels. Ours does the same on grey images, so
    that our MNIST set is theirs; colour images are blurred along both axes, as ImageNet-C's are.
    """
    sigma, reach, rounds = level
    factor = side_factor(image)
    sigma, reach = sigma * factor, max(1, round(reach * factor))
    across_columns = image.shape[2] > 1
    once = np.floor(blur(image, sigma, across_columns=across_columns) * 255.0) / 255.0
    return blur(shuffle_locally(once, reach, rounds, rng), sigma, across_columns=across_columns)


def motion_kernel(radius: float, sigma: float, degrees: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageMagick's motion-blur kernel (MotionBlurImage): 2 * ceil(radius) + 1 taps at 0, 1, 2, ...
    pixels along the angle ``degrees``, rounded to whole pixels, weighted by a half gaussian of
    ``sigma`` that sums to 1. Returns the weights and each tap's row and column offsets."""
    taps = np.arange(2 * math.ceil(radius) + 1)
    weights = np.exp(-(taps**2) / (2.0 * sigma**2))
    angle = math.radians(degrees)
    row_offsets = np.ceil(taps * math.sin(angle) - 0.5).astype(int)
    column_offsets = np.ceil(taps * math.cos(angle) - 0.5).astype(int)
    return weights / weights.sum(), row_offsets, column_offsets


def motion_blur(image: np.ndarray, level: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's motion blur, ``level`` = (radius, sigma) at 28x28, at an angle drawn uniformly in
    [-45, 45] degrees: each pixel becomes the weighted mean of the pixels behind it along the
    angle (:func:`motion_kernel`), pixels beyond the edge repeating the edge's.

    Theirs called ImageMagick through Wand on a PNG of the image; ours computes its kernel and sum
    in floats, so it can differ from theirs by the rounding of 8-bit steps between them.
    """
    radius, sigma = level
    factor = side_factor(image)
    angle = rng.uniform(-45.0, 45.0)
    weights, row_offsets, column_offsets = motion_kernel(radius * factor, sigma * factor, angle)
    height, width = image.shape[:2]
    margin = len(weights)
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    blurred = np.zeros_like(image)
    for weight, row, column in zip(weights, row_offsets + margin, column_offsets + margin):
        blurred += weight * padded[row : row + height, column : column + width]
    return blurred


register(
    Corruption(
        "gaussian_blur",
        gaussian_blur,
        levels=(1, 2, 3, 4, 6),
        source="Hendrycks & Dietterich 2019, ImageNet-C; levels of MNIST-C's corruptions.py",
        scaled=True,
    )
)
register(
    Corruption(
        "glass_blur",
        glass_blur,
        levels=((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
        source=MNIST_C,
        mnist_c=1,
    )
)
register(
    Corruption(
        "motion_blur",
        motion_blur,
        levels=((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
        source=MNIST_C,
        mnist_c=1,
    )
)
