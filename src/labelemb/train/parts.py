"""Moved to :mod:`labelemb.assembly.parts` (issue 71); this old path forwards, with a
DeprecationWarning, for one release."""

from __future__ import annotations

from ..assembly import parts as _moved_here
from .moved import forward_to

__getattr__ = forward_to(__name__, _moved_here)
