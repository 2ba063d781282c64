"""Seeds: the same seed on the same machine gives the same numbers."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..data.base import epoch_permutation

__all__ = ["describe_seeds", "epoch_permutation", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe_seeds(seeds: list[int]) -> str:
    """``seed 3``, ``seeds 0-4``, ``seeds 0, 2, 5``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"
