"""Affine corruptions: shear, scale, rotate and translate, about the image's centre.

Definitions and settings of Mu & Gilmer 2019 (MNIST-C, Section 2; their corruptions.py). Theirs
warp with scikit-image: the output pixel at (x, y) (column, row) takes the input's value at
``A (x, y) + t``, bilinearly interpolated, 0 outside the image, with ``t`` chosen so that the
centre stays where it is. Ours is the same map with scipy's ``affine_transform`` (order 1,
constant 0), which indexes (row, column), so each matrix below is written in (x, y) as theirs and
swapped. A random direction is drawn as theirs is: the sign of the angle, or of each axis's shift.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import affine_transform

from .base import Corruption, register

MNIST_C = "Mu & Gilmer 2019, MNIST-C, Section 2; their corruptions.py"


def warp(image: np.ndarray, inverse_xy: np.ndarray, shift_xy: np.ndarray | None = None) -> np.ndarray:
    """``image`` whose pixel at (x, y) takes the value at ``inverse_xy @ (x, y) + shift``, each
    channel alike; the shift defaults to the one that keeps the image's centre fixed."""
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    matrix = swap @ inverse_xy @ swap  # (x, y) -> (row, column)
    centre = (np.array(image.shape[:2], dtype=float) - 1.0) / 2.0
    offset = centre - matrix @ centre if shift_xy is None else swap @ shift_xy
    return np.stack(
        [
            affine_transform(image[..., channel], matrix, offset, order=1, mode="constant", cval=0.0)
            for channel in range(image.shape[2])
        ],
        axis=-1,
    )


def random_sign(rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """-1 or +1 with equal chance (``size`` of them), the random direction of MNIST-C's warps."""
    return rng.choice(np.array([-1, 1]), size=size)


def shear(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's shear by ``level`` (radians, either direction) as scikit-image's
    ``AffineTransform(shear=level)`` defined it then: the inverse map (x, y) -> (x - sin(s) y,
    cos(s) y), a horizontal shear that also stretches the rows apart by 1 / cos(s). (Later
    scikit-image versions define shear otherwise; MNIST-C, of 2019, was made with this one.)"""
    angle = level * random_sign(rng)
    return warp(image, np.array([[1.0, -math.sin(angle)], [0.0, math.cos(angle)]]))


def scale(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's scale: the image shrunk to ``level`` of its size about its centre (their inverse
    map's factor is 1 / ``level``), the border filled with 0. Not random."""
    return warp(image, np.eye(2) / level)


def rotate(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's rotation by ``level`` radians, either way, about the image's centre."""
    angle = level * random_sign(rng)
    cos, sin = math.cos(angle), math.sin(angle)
    return warp(image, np.array([[cos, -sin], [sin, cos]]))


def translate(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's translation by ``level`` pixels at 28x28 along each axis, each in a direction of
    its own; on another size the shift along an axis is ``level`` * its side / 28."""
    height, width = image.shape[:2]
    signs = random_sign(rng, size=2)
    shift_xy = np.array([signs[0] * level * width / 28, signs[1] * level * height / 28])
    return warp(image, np.eye(2), shift_xy)


register(Corruption("shear", shear, levels=(0.2, 0.4, 0.6, 0.8, 1.0), source=MNIST_C, mnist_c=2))
register(Corruption("scale", scale, levels=(0.9, 0.8, 0.7, 0.6, 0.5), source=MNIST_C, mnist_c=3))
register(
    Corruption("rotate", rotate, levels=(0.2, 0.4, 0.6, 0.8, 1.0), source=MNIST_C, mnist_c=2, scaled=True)
)
register(Corruption("translate", translate, levels=(1, 2, 3, 4, 5), source=MNIST_C, mnist_c=3))
