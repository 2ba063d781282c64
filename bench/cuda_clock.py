"""What the GPU suite's text part (``bench/text_tfidf.py``, ``bench/label_issues_cost.py``) reads
around one call: its wall clock with the device's queue drained at both ends, the peak of
``torch.cuda.max_memory_allocated`` during it, and the machine it ran on."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def timed(device: str, call: Callable[[], T]) -> tuple[T, float, float | None]:
    """``call()``'s result, its wall seconds and its peak CUDA memory in MiB (None off CUDA)."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = call()
    if cuda:
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return result, wall, torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None


def machine(device: str) -> dict[str, Any]:
    """The device, the GPU's name (None off CUDA), the processor and torch's version."""
    cuda = torch.device(device).type == "cuda"
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }


def megabytes(peak: float | None) -> str:
    """A peak for a printed line: ``1234 MiB``, or ``n/a`` off CUDA."""
    return "n/a" if peak is None else f"{peak:.0f} MiB"
