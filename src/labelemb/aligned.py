"""Tensors read from files, moved into memory of PyTorch's own allocator.

A tensor read by safetensors (or viewed on a NumPy buffer) starts wherever its bytes lay in the
file, 8 bytes past a 64-byte boundary, say. On some CPUs (seen on an AVX-512 AMD EPYC) the BLAS
matrix products take another path through such memory and round differently, so the same
features gave other last bits when read from a cache than when just computed. Copying them into
PyTorch's own (64-byte aligned) memory makes a tensor read from a file compute like a fresh one.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The alignment of PyTorch's CPU allocator, which every freshly computed tensor has.
ALIGNMENT = 64


def aligned(tensor: Tensor) -> Tensor:
    """``tensor`` itself if it is contiguous and starts on an :data:`ALIGNMENT`-byte boundary, else
    a contiguous copy in freshly allocated memory (which is)."""
    if tensor.is_contiguous() and tensor.data_ptr() % ALIGNMENT == 0:
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)
