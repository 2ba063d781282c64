"""Canny edges: the image replaced by its edge map.

MNIST-C's canny_edges (Mu & Gilmer 2019, Section 2; their corruptions.py) is scikit-image's
``feature.canny`` with its defaults on the grey image in [0, 1]. Ours is the same algorithm written
with numpy and scipy.ndimage (Canny 1986, as scikit-image computes it): a gaussian smoothing of
sigma 1 that ignores what lies beyond the image, Sobel gradients, thinning to the local maxima
along the gradient (interpolated between the two neighbours it points between), and hysteresis
between 0.1 and 0.2 of the gradient's magnitude (scikit-image's defaults for a float image, 10 % and
20 % of its type's maximum 1), edges being 8-connected.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import Corruption, register

MNIST_C = "Mu & Gilmer 2019, MNIST-C, Section 2; their corruptions.py"
MNIST_SIDE = 28
#: scikit-image's canny defaults: the smoothing's sigma, the hysteresis thresholds.
SIGMA, LOW_THRESHOLD, HIGH_THRESHOLD = 1.0, 0.1, 0.2
#: scikit-image's rgb2gray weights, for the luminance a colour image's edges are found on.
LUMINANCE = np.array([0.2125, 0.7154, 0.0721])
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def smooth(grey: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``grey`` blurred by a gaussian (truncated at 4 sigma), each pixel divided by the kernel's
    weight that falls inside the image, so the border is not darkened by the zeros beyond it
    (scikit-image's canny with no mask)."""
    inside = ndimage.gaussian_filter(np.ones_like(grey), sigma, mode="constant", cval=0.0, truncate=4.0)
    blurred = ndimage.gaussian_filter(grey, sigma, mode="constant", cval=0.0, truncate=4.0)
    return blurred / (inside + np.finfo(np.float64).eps)


def local_maxima(along_rows: np.ndarray, along_columns: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Where the gradient's ``magnitude`` is positive, the pixel is not on the image's border and no
    less than the magnitude one step ahead and one step behind along the gradient.

    A step along the gradient lands between an axial neighbour (along the gradient's larger
    component) and the diagonal one; its magnitude is interpolated between them with the weight
    smaller / larger component on the diagonal, as scikit-image's four orientation cases do.
    """
    height, width = magnitude.shape
    size_rows, size_columns = np.abs(along_rows), np.abs(along_columns)
    mostly_rows = size_rows >= size_columns
    sign_rows = np.where(along_rows >= 0, 1, -1)
    sign_columns = np.where(along_columns >= 0, 1, -1)
    axial_rows = np.where(mostly_rows, sign_rows, 0)
    axial_columns = np.where(mostly_rows, 0, sign_columns)
    larger = np.maximum(size_rows, size_columns)
    weight = np.divide(
        np.minimum(size_rows, size_columns), larger, out=np.zeros_like(larger), where=larger > 0
    )
    rows, columns = np.indices(magnitude.shape)

    def along_gradient(direction: int) -> np.ndarray:
        """The interpolated magnitude one step ahead (1) or behind (-1); clamped at the border,
        whose pixels are never edges."""

        def at(row_step: np.ndarray, column_step: np.ndarray) -> np.ndarray:
            return magnitude[
                np.clip(rows + direction * row_step, 0, height - 1),
                np.clip(columns + direction * column_step, 0, width - 1),
            ]

        return at(sign_rows, sign_columns) * weight + at(axial_rows, axial_columns) * (1 - weight)

    interior = np.zeros(magnitude.shape, dtype=bool)
    interior[1:-1, 1:-1] = True
    return interior & (magnitude > 0) & (along_gradient(1) <= magnitude) & (along_gradient(-1) <= magnitude)


def hysteresis(candidates: np.ndarray, magnitude: np.ndarray, low: float, high: float) -> np.ndarray:
    """The ``candidates`` of magnitude >= ``low`` whose 8-connected group of such holds one of
    magnitude >= ``high``."""
    weak = candidates & (magnitude >= low)
    groups, count = ndimage.label(weak, structure=EIGHT_NEIGHBOURS)
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(groups[weak & (magnitude >= high)])] = True
    keep[0] = False
    return keep[groups]


def canny(grey: np.ndarray, frame_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The boolean Canny edge map of a 2-D ``grey`` image in [0, 1] with scikit-image's defaults.

    ``frame_scale`` (rows, columns) is how many pixels stand for one of a 28x28 image: the sigma
    grows with it and the gradient is measured per pixel of 28x28 (multiplied by it), so a magnified
    image gets the edges of the original magnified; (1, 1) is scikit-image's canny exactly, up to
    float rounding (ties between equal magnitudes resolved alike).
    """
    scale = np.asarray(frame_scale, dtype=np.float64)
    smoothed = smooth(grey, SIGMA * scale)
    along_rows = ndimage.sobel(smoothed, axis=0) * scale[0]
    along_columns = ndimage.sobel(smoothed, axis=1) * scale[1]
    magnitude = np.hypot(along_rows, along_columns)
    return hysteresis(
        local_maxima(along_rows, along_columns, magnitude), magnitude, LOW_THRESHOLD, HIGH_THRESHOLD
    )


def canny_edges(image: np.ndarray, level: None, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's canny edges: 1 on the edges of the image, 0 elsewhere, on every channel.

    Theirs reads a grey image; a colour image's edges are found on its luminance (scikit-image's
    rgb2gray weights). On a side other than 28 the smoothing and the gradient scale with it (see
    :func:`canny`). ``rng`` is not used.
    """
    height, width, channels = image.shape
    grey = image[..., 0] if channels == 1 else image @ LUMINANCE
    edges = canny(grey, (height / MNIST_SIDE, width / MNIST_SIDE))
    return np.repeat(edges[..., None].astype(np.float64), channels, axis=2)


register(Corruption("canny_edges", canny_edges, levels=(None,), source=MNIST_C, mnist_c=1))
