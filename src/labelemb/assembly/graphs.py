"""``train.cuda_graphs``: a training step replayed as CUDA graphs, where there is CUDA.

A small step on a GPU costs its kernel launches, not its arithmetic (a plain MNIST-MLP step
launches some thirty kernels for under half a millisecond of work). Captured once as a CUDA graph,
a step is one launch. The capture is PyTorch's own: ``torch.compile(mode="reduce-overhead")``
records the forward and backward pass with static input buffers (cudagraph trees), records again
for a new batch shape (an epoch's last, shorter batch) and checks that nothing the graph keeps is
overwritten; the fused Adam that follows is one launch already. Nothing here is ours to capture by
hand. Where it cannot apply (no CUDA device) the step runs as it would without the setting, said
once in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

logger = logging.getLogger(__name__)

Step = TypeVar("Step", bound=Callable)

#: The devices whose fallback was said already (once per process).
_said: set[str] = set()


def graphed(step: Step, device: torch.device) -> Step:
    """``step`` (a module or function of the training step) replayed as CUDA graphs on a CUDA
    ``device``; on any other, ``step`` itself, and one line saying so."""
    if device.type == "cuda":
        return torch.compile(step, mode="reduce-overhead")  # type: ignore[return-value]
    if device.type not in _said:
        _said.add(device.type)
        logger.warning(
            "train.cuda_graphs: CUDA graphs need a CUDA device, this run trains on %s: its steps run "
            "as they would without the setting",
            device.type,
        )
    return step
