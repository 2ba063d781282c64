"""Reading a label representation another run or tool saved: one tensor of a file."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor

from ..aligned import aligned
from ..rundir.files import load_tensors, torch_file_problem


def read_tensor_file(path: Path, key: str) -> Tensor:
    """The float tensor ``key`` (or the only tensor) of a ``.safetensors`` file, or a ``.pt`` tensor."""
    if path.suffix == ".safetensors":
        try:
            tensors = load_file(str(path))
        except Exception as error:  # a torn or foreign file: one line naming it
            raise ValueError(f"cannot read {path} ({error})") from None
        if key in tensors:
            return aligned(tensors[key].float())
        if len(tensors) == 1:
            return aligned(next(iter(tensors.values())).float())
        raise ValueError(
            f"{path} holds tensors {sorted(tensors)} but none named {key!r}: keep one, or name it {key!r}"
        )
    try:
        loaded = load_tensors(path)
    except Exception as error:  # a torn file, or a pickle of more than tensors: never run
        raise ValueError(f"cannot read {path} ({torch_file_problem(error)})") from None
    if not isinstance(loaded, Tensor):
        raise ValueError(f"{path} does not hold a single tensor (found {type(loaded).__name__})")
    return loaded.float()
