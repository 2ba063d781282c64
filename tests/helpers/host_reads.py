"""Host reads of device values, caught as they happen and traced to the code that asked for them.

A training step that reads a device value on the host (``.item()``, ``.tolist()``, ``bool(t)``, a
Python ``if`` on a tensor, ``nonzero``, a boolean mask's index: a shape that depends on the data)
makes a GPU wait for its queue to drain. On the CPU nothing waits, but the same calls are there:
:class:`HostReads` sees them through torch's dispatch (``aten::_local_scalar_dense``,
``aten::nonzero``, ...) and through its Python entry points (``tolist``, ``numpy``), and keeps
those whose nearest caller outside torch is labelemb's code (torch's own, such as the optimiser's
step count on the host, are not labelemb's to change).
"""

from __future__ import annotations

import traceback
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import labelemb

PACKAGE = str(Path(labelemb.__file__).parent)
TORCH = str(Path(torch.__file__).parent)
HERE = str(Path(__file__))

#: Operators that hand a device value, or a shape that depends on one, to the host.
READING_OPERATORS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "item")
#: Tensor methods that read values on the host without going through an operator.
READING_METHODS = ("tolist", "numpy", "item", "__bool__", "__int__", "__float__", "__index__")


def _caller() -> str | None:
    """``file:line`` of the innermost frame outside torch and this module, if it is labelemb's."""
    for frame in reversed(traceback.extract_stack()):
        if frame.filename.startswith(TORCH) or frame.filename == HERE:
            continue
        if frame.filename.startswith(PACKAGE):
            return f"{Path(frame.filename).relative_to(PACKAGE)}:{frame.lineno} {frame.line}"
        return None
    return None


def _boolean_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


class _Operators(TorchDispatchMode):
    def __init__(self, found: list[str]) -> None:
        super().__init__()
        self.found = found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        reads = name in READING_OPERATORS or (name == "index" and _boolean_index(args))
        if reads and (caller := _caller()) is not None:
            self.found.append(f"aten::{name} from {caller}")
        return func(*args, **(kwargs or {}))


class _Methods(TorchFunctionMode):
    def __init__(self, found: list[str]) -> None:
        super().__init__()
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in READING_METHODS and (caller := _caller()) is not None:
            self.found.append(f"Tensor.{name} from {caller}")
        return func(*args, **(kwargs or {}))


class HostReads:
    """``with HostReads() as reads: ...``: ``reads`` lists each host read labelemb's code made."""

    def __enter__(self) -> list[str]:
        self.found: list[str] = []
        self.modes = [_Methods(self.found), _Operators(self.found)]
        for mode in self.modes:
            mode.__enter__()
        return self.found

    def __exit__(self, *exc) -> None:
        for mode in reversed(self.modes):
            mode.__exit__(*exc)
