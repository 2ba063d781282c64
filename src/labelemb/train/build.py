"""Moved to :mod:`labelemb.assembly.build` (issue 71; ``build_run``, a training entry point, to
:func:`labelemb.train.build_run`); this old path forwards, with a DeprecationWarning, for one release."""

from __future__ import annotations

from ..assembly import build as _moved_here
from .moved import forward_to
from .trainer import build_run as _build_run

__getattr__ = forward_to(__name__, _moved_here, {"build_run": ("labelemb.train", _build_run)})
