"""Overlays: stripe, spatter, dotted line and zigzag drawn over the image.

Definitions and settings of Mu & Gilmer 2019 (MNIST-C, Section 2; their corruptions.py), drawn on
28x28 grey images. Ours draws in the same 28x28 frame stretched over the image: pixel (i, j) of an
h x w image sits at ((i + 0.5) 28/h - 0.5, (j + 0.5) 28/w - 0.5) there, so a 28x28 image gets exactly
theirs and a larger one theirs magnified. Their spatter's colour image (ImageNet-C, Hendrycks &
Dietterich 2019) is mud brown; a line is white on every channel.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from .base import Corruption, register

MNIST_C = "Mu & Gilmer 2019, MNIST-C, Section 2; their corruptions.py"
MNIST_SIDE = 28
#: Their stripes: columns 0-6 and 21-27 of 28 inverted.
STRIPE_COLUMNS = 7
#: A line's vertical reach: its brightness is 1 + log(1 - distance / 2.3), 0 where that is negative.
LINE_REACH = 2.3
#: Their dotted line's dashes and gaps: 2 columns each, starting with a gap at column 0.
DASH_COLUMNS = 2
#: Their zigzag: from column 2 to 25, teeth 2 long and 2 high along the line.
ZIGZAG_START, ZIGZAG_END, TOOTH_LENGTH, TOOTH_HEIGHT = 2, 25, 2.0, 2.0
#: ImageNet-C's mud (their spatter at severities 4 and 5) in RGB; MNIST-C's grey mud is its red.
MUD_RGB = np.array([63.0, 42.0, 20.0]) / 255.0


def frame_positions(size: int) -> np.ndarray:
    """Where the ``size`` pixels along an axis sit in MNIST's 28-pixel frame (their centres)."""
    return (np.arange(size) + 0.5) * (MNIST_SIDE / size) - 0.5


def frame_columns(width: int) -> np.ndarray:
    """The 28x28 frame's column (an integer 0-27) that each of ``width`` columns falls in."""
    return np.floor((np.arange(width) + 0.5) * (MNIST_SIDE / width)).astype(int)


def line(start: tuple[float, float], end: tuple[float, float], height: int, width: int) -> np.ndarray:
    """MNIST-C's line from ``start`` to ``end`` ((column, row) in the 28x28 frame, start left of
    end) on a ``height`` x ``width`` grid: 1 + log(1 - d / 2.3), clipped to [0, 1], d the vertical
    distance to the straight line through both points, on the frame's columns from floor(start)
    up to, not including, ceil(end); nothing for a vertical line.

    Their ``line_from_points`` (numpy, not PIL), so it is anti-aliased as theirs: a pixel's
    brightness falls with its vertical distance from the line, so a steep segment is thinner.
    """
    (column0, row0), (column1, row1) = start, end
    if column1 == column0:
        return np.zeros((height, width))
    slope = (row1 - row0) / (column1 - column0)
    line_rows = row0 + slope * (frame_positions(width) - column0)
    distance = np.abs(frame_positions(height)[:, None] - line_rows[None, :])
    # Zero exactly where theirs is clipped to zero (not a rounding error above it).
    dark_from = LINE_REACH * (1.0 - math.exp(-1.0))
    fading = np.clip(1.0 + np.log1p(-np.minimum(distance, dark_from) / LINE_REACH), 0.0, 1.0)
    brightness = np.where(distance < dark_from, fading, 0.0)
    columns = frame_columns(width)
    within = (columns >= math.floor(column0)) & (columns < math.ceil(column1))
    return brightness * within[None, :]


def stripe(image: np.ndarray, level: None, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's stripe: the left and right quarters of the image (columns 0-6 and 21-27 of 28)
    inverted (1 - x); ``rng`` is not used."""
    columns = frame_columns(image.shape[1])
    outer = (columns < STRIPE_COLUMNS) | (columns >= MNIST_SIDE - STRIPE_COLUMNS)
    stripes = image.copy()
    stripes[:, outer] = 1.0 - stripes[:, outer]
    return stripes


def spatter(
    image: np.ndarray, level: tuple[float, float, float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """MNIST-C's spatter (ImageNet-C's mud): ``level`` = (mean, spread, sigma, threshold,
    mask_sigma). A normal field (mean, spread) blurred by ``sigma`` is wet above ``threshold``;
    the wet area blurred by ``mask_sigma`` and kept where >= 0.8 is the mud's opacity, its colour
    63/255 on grey images (MNIST-C) and RGB (63, 42, 20)/255 on colour ones (ImageNet-C).

    Their sixth setting (water or mud in ImageNet-C) is left out: MNIST-C draws mud at every
    severity. The blurs are scipy's gaussian_filter with scikit-image's ``gaussian`` defaults
    (mode 'nearest', truncated at 4 sigma). On a side other than 28 both sigmas scale with it and
    the field's spread with their geometric mean, since blurring white noise k times wider divides
    its spread by k: the wet area then has their statistics, magnified.
    """
    mean, spread, sigma, threshold, mask_sigma = level
    height, width = image.shape[:2]
    scales = np.array([height, width]) / MNIST_SIDE
    field = rng.normal(mean, spread * math.sqrt(scales.prod()), size=(height, width))
    wet = gaussian_filter(field, sigma * scales, mode="nearest", truncate=4.0) > threshold
    opacity = gaussian_filter(wet.astype(np.float64), mask_sigma * scales, mode="nearest", truncate=4.0)
    opacity[opacity < 0.8] = 0.0
    mud = MUD_RGB[:1] if image.shape[2] == 1 else MUD_RGB
    return image * (1.0 - opacity[..., None]) + mud * opacity[..., None]


def dotted_line(image: np.ndarray, level: None, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's dotted line: a line from (column 0, row r0) to (column 27, row r1), r0 and r1
    drawn uniformly from 0-26 with ``rng``, kept on alternate pairs of columns (2-3, 6-7, ...; column
    27 is past the line's last column, as theirs), added to the image."""
    height, width = image.shape[:2]
    row0, row1 = rng.integers(0, MNIST_SIDE - 1, size=2)
    drawn = line((0.0, float(row0)), (MNIST_SIDE - 1.0, float(row1)), height, width)
    dashes = (frame_columns(width) // DASH_COLUMNS) % 2 == 1
    return image + (drawn * dashes[None, :])[..., None]


def zigzag_vertices(row0: float, row1: float) -> np.ndarray:
    """The corners (columns, rows) of MNIST-C's zigzag from (column 2, ``row0``) towards
    (column 25, ``row1``): along the line of length d, teeth at distances 2, 6, 10, ... alternately
    2 above and 2 below it, and a last corner at d whose height is the last tooth's divided by twice
    what is left past the last multiple of 4 (their construction, kept as it is)."""
    angle = math.atan((row1 - row0) / (ZIGZAG_END - ZIGZAG_START))
    length = (ZIGZAG_END - ZIGZAG_START) / math.cos(angle)
    along, across = [0.0], [0.0]
    for tooth in range(int((length - TOOTH_LENGTH) // (2 * TOOTH_LENGTH)) + 1):
        along.append((2 * tooth + 1) * TOOTH_LENGTH)
        across.append((-1) ** tooth * TOOTH_HEIGHT)
    past_teeth = length - 2 * TOOTH_LENGTH * (length // (2 * TOOTH_LENGTH))
    if past_teeth != 0:
        along.append(length)
        across.append(across[-1] / (2 * past_teeth))
    along_array, across_array = np.array(along), np.array(across)
    columns = ZIGZAG_START + math.cos(angle) * along_array - math.sin(angle) * across_array
    rows = row0 + math.sin(angle) * along_array + math.cos(angle) * across_array
    return np.stack([columns, rows])


def zigzag(image: np.ndarray, level: None, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's zigzag: the lines between :func:`zigzag_vertices`, from row r0 drawn uniformly
    from 0-26 towards r0 + k, k uniform in -5..4 (with ``rng``), added to the image. Each segment is
    drawn over its own columns as their ``line_from_points``, so neighbouring segments overlap on
    the column they share."""
    height, width = image.shape[:2]
    row0 = int(rng.integers(0, MNIST_SIDE - 1))
    row1 = row0 + int(rng.integers(-5, 5))
    columns, rows = zigzag_vertices(row0, row1)
    drawn = sum(
        line((columns[i], rows[i]), (columns[i + 1], rows[i + 1]), height, width)
        for i in range(len(columns) - 1)
    )
    return image + np.asarray(drawn)[..., None]


register(Corruption("stripe", stripe, levels=(None,), source=MNIST_C, mnist_c=1))
register(
    Corruption(
        "spatter",
        spatter,
        levels=(
            (0.65, 0.3, 4, 0.69, 0.6),
            (0.65, 0.3, 3, 0.68, 0.6),
            (0.65, 0.3, 2, 0.68, 0.5),
            (0.65, 0.3, 1, 0.65, 1.5),
            (0.67, 0.4, 1, 0.65, 1.5),
        ),
        source=MNIST_C + "; colour images as Hendrycks & Dietterich 2019, ImageNet-C",
        mnist_c=4,
    )
)
register(Corruption("dotted_line", dotted_line, levels=(None,), source=MNIST_C, mnist_c=1))
register(Corruption("zigzag", zigzag, levels=(None,), source=MNIST_C, mnist_c=1))
