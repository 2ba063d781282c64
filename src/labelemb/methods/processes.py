"""Statistics across the processes of one torchrun job: a method's counts and sums are global."""

from __future__ import annotations

import torch
from torch import Tensor


def is_distributed() -> bool:
    """Whether this process is one of several (torchrun) whose statistics must be combined."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    return torch.distributed.get_world_size() if is_distributed() else 1


def per_process_share(local: Tensor) -> Tensor:
    """The all-process sum of ``local`` divided by the number of processes (``local`` alone if one).

    Data parallel training averages gradients over processes, so a per-process loss normalised
    by this share gives exactly the gradient of the global batch normalised by the global count,
    however the batch is split.
    """
    if not is_distributed():
        return local
    total = local.detach().clone()
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total / world_size()


def from_main_process(tensor: Tensor) -> Tensor:
    """``tensor`` as process 0 holds it, on every process (in place; ``tensor`` itself if one).

    What a method computes from it (AdaFocal's gammas from the dev predictions) is then the same on
    every process, however the processes' own computations round.
    """
    if is_distributed():
        torch.distributed.broadcast(tensor, src=0)
    return tensor
