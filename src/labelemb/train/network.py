"""Moved to :mod:`labelemb.assembly.network` (issue 71); this old path forwards, with a
DeprecationWarning, for one release."""

from __future__ import annotations

from ..assembly import network as _moved_here
from .moved import forward_to

__getattr__ = forward_to(__name__, _moved_here)
