"""Photometric corruptions: brightness, contrast and fog.

Brightness and fog are MNIST-C's (Mu & Gilmer 2019, Section 2; their corruptions.py), at the
severities that set uses; contrast is ImageNet-C's (Hendrycks & Dietterich 2019), not in MNIST-C,
with its five levels. MNIST-C's code took all three from ImageNet-C's on grey 28x28 images; a colour
image here is treated as ImageNet-C treats one.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from .base import Corruption, register

MNIST_C = "Mu & Gilmer 2019, MNIST-C, Section 2; their corruptions.py"
IMAGENET_C = "Hendrycks & Dietterich 2019, ImageNet-C"
#: MNIST's side: the fog's fractal is sized for it (their 28x28 crop of a 256x256 map).
MNIST_SIDE = 28
#: The side of their fractal map for a 28x28 image.
FRACTAL_SIDE = 256
#: The displacement scale of the fractal's first (coarsest) step, as theirs starts.
FIRST_WIBBLE = 100.0


def brightness(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each pixel's HSV value raised by ``level`` (capped at 1), its hue and saturation kept
    (ImageNet-C's brightness; MNIST-C's on grey images, where it is ``min(x + level, 1)``).

    Theirs converts to HSV and back with scikit-image; ours does the same without the round trip:
    the value is a pixel's largest channel, and at a fixed hue and saturation every channel is
    proportional to it, so the pixel is scaled by new value / old value (a black pixel, value 0 and
    saturation 0 in scikit-image's convention, becomes the grey of its new value). Equal to theirs
    up to float rounding; ``rng`` is not used.
    """
    value = image.max(axis=2, keepdims=True)
    raised = np.minimum(value + level, 1.0)
    ratio = np.divide(raised, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, image * ratio, raised)


def contrast(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each channel's distance to its mean over the image multiplied by ``level`` (ImageNet-C's
    contrast: lower is less contrast); ``rng`` is not used."""
    means = image.mean(axis=(0, 1), keepdims=True)
    return (image - means) * level + means


def plasma_fractal(side: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A ``side`` x ``side`` heightmap in [0, 1] by the diamond-square algorithm, wrapping around
    its edges, as ImageNet-C's and MNIST-C's ``plasma_fractal`` (``side`` a power of two).

    From a single corner of height 0, each step halves the grid's spacing: each square's centre is
    the mean of its four corners, and each edge's midpoint the mean of its two corners and the two
    centres beside it, each plus a displacement uniform in +-wibble^2 (their mean adds wibble times
    a draw in +-wibble); wibble starts at 100 and is divided by ``decay`` after each step. The map
    is then shifted and scaled to [0, 1]. The draws come from ``rng`` (theirs from numpy's global
    state); each step's grid is a contiguous array, interleaved into the next, for speed.
    """
    if side < 2 or side & (side - 1):
        raise ValueError(f"the plasma fractal's side must be a power of two (at least 2), got {side}")
    corners = np.zeros((1, 1))
    wibble = FIRST_WIBBLE
    while corners.shape[0] < side:
        count = corners.shape[0]
        displacements = rng.uniform(-(wibble**2), wibble**2, size=(3, count, count))
        below = np.roll(corners, -1, axis=0)
        right = np.roll(corners, -1, axis=1)
        centres = (corners + below + right + np.roll(below, -1, axis=1)) / 4 + displacements[0]
        # Midpoints of the squares' top edges: corners left and right, centres below and above.
        tops = (corners + right + centres + np.roll(centres, 1, axis=0)) / 4 + displacements[1]
        # Midpoints of the squares' left edges: corners above and below, centres right and left.
        lefts = (corners + below + centres + np.roll(centres, 1, axis=1)) / 4 + displacements[2]
        finer = np.empty((2 * count, 2 * count))
        finer[::2, ::2], finer[1::2, 1::2], finer[::2, 1::2], finer[1::2, ::2] = corners, centres, tops, lefts
        corners, wibble = finer, wibble / decay
    corners -= corners.min()
    return corners / corners.max()


def fog_layer(height: int, width: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's fog layer, the 28x28 corner of a 256x256 plasma fractal, for an image of
    ``height`` x ``width``: 28x28 gets exactly that corner, another size the same corner stretched
    over it (linear interpolation at the pixels' centres), so the fog keeps its shape at any size and
    costs one 256x256 map per image (a larger map would add finer detail than theirs has)."""
    heights = plasma_fractal(FRACTAL_SIDE, decay, rng)[:MNIST_SIDE, :MNIST_SIDE]
    if (height, width) == heights.shape:
        return heights
    rows = (np.arange(height) + 0.5) * (MNIST_SIDE / height) - 0.5
    columns = (np.arange(width) + 0.5) * (MNIST_SIDE / width) - 0.5
    return map_coordinates(
        heights, np.stack(np.meshgrid(rows, columns, indexing="ij")), order=1, mode="nearest"
    )


def fog(image: np.ndarray, level: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's fog: ``thickness`` times a plasma fractal (``level`` = (thickness, decay); a
    lower decay is a rougher fog) added to every channel, then the image scaled by
    max / (max + thickness), max its largest value before, so its brightest stays about as bright.

    As theirs, an all-black image stays black (its max is 0). The fog is MNIST-C's at every size:
    ImageNet-C's own fog spreads nearly the whole 256x256 map over a 224x224 image, a coarser fog.
    """
    thickness, decay = level
    layer = fog_layer(image.shape[0], image.shape[1], decay, rng)
    brightest = image.max()
    return (image + thickness * layer[..., None]) * (brightest / (brightest + thickness))


register(
    Corruption(
        "brightness",
        brightness,
        levels=(0.1, 0.2, 0.3, 0.4, 0.5),
        source=MNIST_C + "; colour images as " + IMAGENET_C,
        mnist_c=5,
    )
)
register(Corruption("contrast", contrast, levels=(0.4, 0.3, 0.2, 0.1, 0.05), source=IMAGENET_C, scaled=True))
register(
    Corruption(
        "fog",
        fog,
        levels=((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
        source=MNIST_C,
        mnist_c=5,
    )
)
