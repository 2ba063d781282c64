"""What a corruption is, and how a batch of images (or texts) is corrupted with one, deterministically.

A corruption is a function of one example, a strength and a random generator (:class:`Corruption`);
:func:`corrupt` applies it to every image of a batch, each with a generator seeded from the seed,
the corruption, its severity and the example's index, so that the same call gives the same bytes
on any machine and at any thread count, and one example's corruption does not depend on the
others in its batch. Images are read as float64 (height, width, channels) in [0, 1] and the
result is clipped to [0, 1] and rounded to 8 bits, as the MNIST-C and ImageNet-C sets were saved.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...registry import Registry

#: One image (height, width, channels) float64 in [0, 1], its strength at the asked severity, and
#: the generator of its randomness -> the corrupted image of the same shape (clipped afterwards).
ImageTransform = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
#: One text, its strength (a rate), the generator -> the perturbed text.
TextTransform = Callable[[str, Any, np.random.Generator], str]


@dataclass(frozen=True)
class Corruption:
    """One corruption: ``transform`` at the strength ``levels[severity - 1]``.

    ``reads`` is what it applies to (``"images"`` or ``"texts"``); ``mnist_c`` the severity the
    MNIST-C set uses (Mu & Gilmer 2019; None for a corruption not in it); ``scaled`` whether its
    ``levels`` are a five-step scale of strength (Hendrycks & Dietterich 2019) rather than one
    setting; ``source`` the definition it follows; ``version`` is raised whenever its definition
    changes, so that a recorded result computed with the old one is not read back as current.
    """

    name: str
    transform: ImageTransform | TextTransform
    levels: tuple[Any, ...]
    source: str
    reads: str = "images"
    mnist_c: int | None = None
    scaled: bool = False
    version: int = 1

    def severities(self) -> tuple[int, ...]:
        """The severities it has: 1 to the number of its levels."""
        return tuple(range(1, len(self.levels) + 1))

    def level(self, severity: int) -> Any:
        """Its strength at ``severity``; a ValueError naming the severities it has."""
        if severity not in self.severities():
            raise ValueError(
                f"corruption {self.name!r} has no severity {severity}: it has "
                f"{', '.join(map(str, self.severities()))}"
            )
        return self.levels[severity - 1]

    def default_severity(self) -> int:
        """MNIST-C's severity where it has one, else its middle one."""
        return self.mnist_c if self.mnist_c is not None else (len(self.levels) + 1) // 2

    def definition(self) -> str:
        """A digest of what defines it (name, version, levels, source): in a shift result's record."""
        text = repr((self.name, self.version, self.levels, self.reads, self.source))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register(corruption: Corruption) -> Corruption:
    """Make ``corruption`` known by its name."""
    CORRUPTIONS.register(corruption.name)(corruption)
    return corruption


def corruption(name: str) -> Corruption:
    """The corruption called ``name``; a ValueError with a did-you-mean if there is none."""
    return CORRUPTIONS.get(name)


def example_generator(seed: int, name: str, severity: int, index: int) -> np.random.Generator:
    """The generator of example ``index``'s randomness: a function of the seed, the corruption, the
    severity and the index only (not of the batch around it or of the machine)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity, index])


def corrupt(images: torch.Tensor, name: str, severity: int | None = None, *, seed: int = 0) -> torch.Tensor:
    """``images`` (N, C, H, W) in [0, 1] corrupted by ``name`` at ``severity`` (None: its default,
    :meth:`Corruption.default_severity`); float32 of the same shape, in [0, 1], on 8-bit levels."""
    chosen = corruption(name)
    if chosen.reads != "images":
        raise ValueError(f"corruption {name!r} applies to {chosen.reads}, not to images")
    if images.dim() != 4:
        raise ValueError(f"corrupt takes images (N, C, H, W), got a tensor of shape {tuple(images.shape)}")
    severity = chosen.default_severity() if severity is None else severity
    level = chosen.level(severity)
    pixels = images.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    out = np.empty(pixels.shape, dtype=np.float32)
    for index, image in enumerate(pixels):
        rng = example_generator(seed, name, severity, index)
        changed = np.asarray(chosen.transform(image.copy(), level, rng), dtype=np.float64)
        if changed.shape != image.shape:
            raise RuntimeError(f"corruption {name!r} made an image of {image.shape} one of {changed.shape}")
        out[index] = np.round(np.clip(changed, 0.0, 1.0) * 255.0) / 255.0
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.dtype)


def perturb_texts(
    texts: Sequence[str], name: str, severity: int | None = None, *, seed: int = 0
) -> list[str]:
    """``texts`` perturbed by the text corruption ``name`` at ``severity`` (None: its middle one),
    each with its own generator as :func:`corrupt` does for images."""
    chosen = corruption(name)
    if chosen.reads != "texts":
        raise ValueError(f"corruption {name!r} applies to {chosen.reads}, not to texts")
    severity = chosen.default_severity() if severity is None else severity
    level = chosen.level(severity)
    return [
        str(chosen.transform(text, level, example_generator(seed, name, severity, index)))
        for index, text in enumerate(texts)
    ]
