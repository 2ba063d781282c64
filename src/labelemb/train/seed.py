"""Moved (issue 71): ``seed_everything`` to :mod:`labelemb.assembly.parts` (a run is seeded as its
pieces are built), ``describe_seeds`` to :mod:`labelemb.train.display`, ``epoch_permutation`` from
:mod:`labelemb.data.base`; this old path forwards them, with a DeprecationWarning, for one release."""

from __future__ import annotations

from ..assembly.parts import seed_everything as _seed_everything
from ..data.base import epoch_permutation as _epoch_permutation
from .display import describe_seeds as _describe_seeds
from .moved import forward_to

__getattr__ = forward_to(
    __name__,
    None,
    {
        "seed_everything": ("labelemb.assembly.parts", _seed_everything),
        "describe_seeds": ("labelemb.train.display", _describe_seeds),
        "epoch_permutation": ("labelemb.data.base", _epoch_permutation),
    },
)
