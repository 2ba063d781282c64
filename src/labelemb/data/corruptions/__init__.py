"""Corruptions of a data set's inputs, to measure a classifier under shift.

Images: the fifteen of MNIST-C (Mu & Gilmer 2019), each at the severity that set uses, and
five-step scales of strength for the ones that have a natural one (Hendrycks & Dietterich 2019);
texts: character noise and word dropout at given rates. Each corruption is a deterministic function
of one example and a seeded generator (:mod:`.base`); one module per family registers its own.
"""

from __future__ import annotations

from ...registry import import_modules
from .base import (
    CORRUPTIONS,
    Corruption,
    corrupt,
    corruption,
    example_generator,
    perturb_texts,
    register,
)

import_modules(__name__, __path__)

__all__ = [
    "CORRUPTIONS",
    "Corruption",
    "corrupt",
    "corruption",
    "example_generator",
    "perturb_texts",
    "register",
]
