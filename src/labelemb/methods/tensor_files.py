"""Reading a label representation another run or tool saved: one tensor of a file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..aligned import aligned


def read_tensor_file(path: Path, key: str) -> Tensor:
    """The float tensor ``key`` (or the only tensor) of a ``.safetensors`` file, or a ``.pt`` tensor."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if key in tensors:
            return aligned(tensors[key].float())
        if len(tensors) == 1:
            return aligned(next(iter(tensors.values())).float())
        raise ValueError(
            f"{path} holds tensors {sorted(tensors)} but none named {key!r}: keep one, or name it {key!r}"
        )
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Tensor):
        raise ValueError(f"{path} does not hold a single tensor (found {type(loaded).__name__})")
    return loaded.float()
