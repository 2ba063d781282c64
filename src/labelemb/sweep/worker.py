"""A warm worker: a process (of the local executor's pool, or Ray's) that trains unit after unit.

It keeps what does not change between runs, its interpreter and imports, its CUDA context and
compiled kernels, and the data sets it has read (:class:`HeldData`, by content); what a run sets
in the process (seeds, thread counts, torch's deterministic switches, the default dtype, the
environment) is put back before the next (:class:`GlobalState`), so that a run's numbers are those
of a fresh process. :func:`work` is the worker's door: it returns a unit's summaries, or its
:class:`~labelemb.sweep.failures.Failure`, never raises a run's error.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from .failures import Failure
from .units import Unit, run_unit

#: A process-wide setting: how to read it and how to set it back.
Setting = tuple[Callable[[], Any], Callable[[Any], None]]


def _deterministic() -> tuple[bool, bool]:
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


def _set_deterministic(value: tuple[bool, bool]) -> None:
    torch.use_deterministic_algorithms(value[0], warn_only=value[1])


def _cudnn() -> tuple[bool, bool, bool, bool]:
    cudnn = torch.backends.cudnn
    return cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32


def _set_cudnn(value: tuple[bool, bool, bool, bool]) -> None:
    cudnn = torch.backends.cudnn
    cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = value


def _set_environment(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


def _set_warning_filters(saved: list[Any]) -> None:
    warnings.filters[:] = saved


def _cuda_random() -> list[torch.Tensor] | None:
    # Read only where CUDA is up already: reading would start it in a CPU-only worker.
    return torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None


def _set_cuda_random(states: list[torch.Tensor] | None) -> None:
    if states is not None:
        torch.cuda.set_rng_state_all(states)


#: Everything of a process a run may set and the next must not inherit, by name.
SETTINGS: dict[str, Setting] = {
    "threads": (torch.get_num_threads, torch.set_num_threads),
    "deterministic algorithms": (_deterministic, _set_deterministic),
    "cudnn": (_cudnn, _set_cudnn),
    "float32 matmul precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "grad mode": (torch.is_grad_enabled, torch.set_grad_enabled),
    "anomaly detection": (torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    "python random": (random.getstate, random.setstate),
    "numpy random": (np.random.get_state, np.random.set_state),
    "torch random": (torch.get_rng_state, torch.set_rng_state),
    "cuda random": (_cuda_random, _set_cuda_random),
    "environment": (lambda: dict(os.environ), _set_environment),
    "warning filters": (lambda: list(warnings.filters), _set_warning_filters),
}
if hasattr(torch, "get_default_device"):  # torch 2.3 and later
    SETTINGS["default device"] = (torch.get_default_device, torch.set_default_device)


@dataclass(frozen=True)
class GlobalState:
    """The process-wide settings of :data:`SETTINGS` as they were when :meth:`capture` read them."""

    values: dict[str, Any]

    @classmethod
    def capture(cls) -> GlobalState:
        return cls({name: get() for name, (get, _) in SETTINGS.items()})

    def restore(self) -> None:
        """Set every setting back to its captured value."""
        for name, (_, put) in SETTINGS.items():
            put(self.values[name])


class HeldData:
    """The data sets a worker has read, by the digest of what they hold, the most recent
    ``capacity`` of them: the next run of the same data reads nothing."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self.held: OrderedDict[str, Any] = OrderedDict()

    def get(self, source: Any) -> Any:
        """The data set of ``source`` (a plan's :class:`~labelemb.assembly.parts.DataSource`)."""
        key = data_key(source)
        if key not in self.held:
            self.held[key] = source.load()
            while len(self.held) > self.capacity:
                self.held.popitem(last=False)
        self.held.move_to_end(key)
        return self.held[key]


#: What a data request holds that does not change what is read (the sections are read apart).
_NOT_CONTENT = ("sections", "progress")


def data_key(source: Any) -> str:
    """What a data source holds, as a digest: its content's fingerprint where the data set has one
    (your files), with its name, what is asked of it and the noise on its labels (a named set
    checks its own files against their fixed checksums as it reads them)."""
    request = source.request
    asked = {f.name: getattr(request, f.name) for f in fields(request) if f.name not in _NOT_CONTENT}
    asked["sections"] = {name: options.model_dump(mode="json") for name, options in request.sections.items()}
    # The noise is part of what is held: a source's load makes its labels noisy.
    noise = getattr(source, "noise", None)
    asked["noise"] = None if noise is None else noise.model_dump(mode="json")
    described = json.dumps([source.name, asked, source.fingerprint()], sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()


#: This process's state before its first run, and the data it holds (a worker's, once started).
_pristine: GlobalState | None = None
_held = HeldData()


def start() -> None:
    """Read this worker's state as it starts (its threads and device already set): each run
    begins from it."""
    global _pristine
    _pristine = GlobalState.capture()


def work(unit: Unit) -> list[dict[str, Any]] | Failure:
    """Train ``unit`` in this warm worker from its starting state; its summaries, or its failure
    (a run's error stays with its run: the grid goes on)."""
    if _pristine is None:
        start()  # a process whose start did not read it: nothing ran in it before
    assert _pristine is not None
    _pristine.restore()
    try:
        return run_unit(unit, _held.get)
    except Exception as error:
        return Failure.of(error)
