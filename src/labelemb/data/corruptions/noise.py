"""Pixel noise: gaussian, shot (Poisson) and impulse (salt-and-pepper) noise.

Definitions and settings of Mu & Gilmer 2019 (MNIST-C, Section 2; their corruptions.py), which
take them from Hendrycks & Dietterich 2019 (ImageNet-C). Each pixel (and each channel of a colour
pixel) is noised independently, as theirs are, so the noise does not depend on the image's size.
"""

from __future__ import annotations

import numpy as np

from .base import Corruption, register

MNIST_C = "Mu & Gilmer 2019, MNIST-C, Section 2; their corruptions.py"


def gaussian_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` plus independent normal noise of standard deviation ``level`` (ImageNet-C's
    gaussian noise; MNIST-C's code has it with these levels but leaves it out of its set)."""
    return image + rng.normal(0.0, level, size=image.shape)


def shot_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: each value is a count drawn with mean ``image * level``, divided by
    ``level`` (fewer photons, a lower level, is noisier; MNIST-C's shot noise)."""
    return rng.poisson(image * level) / level


def impulse_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: each value is replaced with probability ``level``, by 1 or 0 with equal
    chance (MNIST-C's impulse noise, scikit-image's ``random_noise(mode='s&p')``)."""
    replaced = rng.random(image.shape) < level
    salt = rng.random(image.shape) < 0.5
    noisy = image.copy()
    noisy[replaced & salt] = 1.0
    noisy[replaced & ~salt] = 0.0
    return noisy


register(
    Corruption(
        "gaussian_noise",
        gaussian_noise,
        levels=(0.08, 0.12, 0.18, 0.26, 0.38),
        source="Hendrycks & Dietterich 2019, ImageNet-C; levels of MNIST-C's corruptions.py",
        scaled=True,
    )
)
register(Corruption("shot_noise", shot_noise, levels=(60, 25, 12, 5, 3), source=MNIST_C, mnist_c=5))
register(
    Corruption(
        "impulse_noise", impulse_noise, levels=(0.03, 0.06, 0.09, 0.17, 0.27), source=MNIST_C, mnist_c=4
    )
)
