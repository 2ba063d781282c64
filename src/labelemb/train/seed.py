"""Seeds: the same seed on the same machine gives the same numbers."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_permutation(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The training order of one epoch, a function of (seed, epoch) alone.

    Deriving it afresh each epoch, instead of drawing from one running generator, lets a run
    killed mid-epoch resume with exactly the order it would have had.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator)


def describe_seeds(seeds: list[int]) -> str:
    """``seed 3``, ``seeds 0-4``, ``seeds 0, 2, 5``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"
