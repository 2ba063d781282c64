"""Several processes on one run (``torchrun``): each trains on its share of every global batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress."""
        return self.rank == 0

    def shard(self, index: torch.Tensor, group: int = 1) -> torch.Tensor:
        """This process's share of a global batch: every ``world_size``-th example from ``rank``,
        or, where the rows come in groups of ``group`` that belong together (a method's
        :attr:`~labelemb.methods.base.Method.batch_shape`), every ``world_size``-th group.

        Every process draws the same global order from the seed, so the shares are disjoint and
        together are the global batch, whatever the number of processes.
        """
        if self.world_size == 1:
            return index
        if group == 1:
            return index[self.rank :: self.world_size]
        return index.reshape(-1, group)[self.rank :: self.world_size].reshape(-1)


def init_from_environment() -> Processes:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return Processes(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def current() -> Processes:
    """This process's place, from an initialised process group (one process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Processes()
    return Processes(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def shutdown() -> None:
    """Leave the process group; every process first reaches the barrier, so none tears gloo down
    while another is still in a collective."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
