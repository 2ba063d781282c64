"""A counter that lives in a buffer (so that a checkpoint keeps it) and is needed on the host.

Variant nlp of label_embedding turns its soft term on after a warm-up of updates: a number the
step needs as a Python value. Reading the buffer at every step would make a GPU wait for its queue
each time; :class:`HostCount` keeps the value on the host and reads the buffer only when something
else wrote it (a loaded checkpoint, seeds stacked into new tensors, a move to another device).
"""

from __future__ import annotations

from torch import Tensor


class HostCount:
    """The host's copy of an integer buffer (its first entry: stacked seeds count together).

    Valid while the buffer is the same tensor at the same version: every in-place write (``+=``,
    ``copy_``, ``load_state_dict``) bumps a tensor's version, and a replaced tensor is another object.
    """

    def __init__(self) -> None:
        self._seen: tuple[Tensor, int, int] | None = None

    def read(self, counter: Tensor) -> int:
        """The counter's value: from the host's copy, or once from the buffer after an outside write."""
        seen = self._seen
        if seen is not None and seen[0] is counter and seen[1] == counter._version:
            return seen[2]
        value = int(counter.reshape(-1)[0])
        self._seen = (counter, counter._version, value)
        return value

    def add_one(self, counter: Tensor) -> None:
        """``counter += 1`` on its device, and on the host's copy."""
        value = self.read(counter) + 1
        counter += 1
        self._seen = (counter, counter._version, value)
