"""Same seed, same numbers, on a GPU too: ``train.deterministic`` (on by default).

On the CPU torch's kernels give the same bits for the same inputs already (the thread count aside:
:mod:`labelemb.training.threads`). On CUDA several do not: cuBLAS splits a product over a workspace
whose use depends on timing, cuDNN picks its convolution algorithms by racing them
(``benchmark``), and atomics add in whatever order threads arrive (``index_add_``, ``scatter_add_``
backward). ``train.deterministic: true`` asks torch for its deterministic kernels everywhere, and a
method whose operation has none is refused in one line
(:func:`labelemb.training.recipe.name_nondeterministic`, where the refusal is caught); ``false`` is
the documented way to go faster where bit-for-bit repeats do not matter.
"""

from __future__ import annotations

import os

import torch

#: cuBLAS's deterministic workspace (its documented setting); read when CUDA starts cuBLAS, so it
#: is set at the command line's start and before a run's first product.
CUBLAS_WORKSPACE = ":4096:8"


def ask_cublas_for_a_fixed_workspace() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` unless the user did: harmless on a CPU, needed before CUDA."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def use_deterministic_kernels(on: bool) -> None:
    """torch's deterministic kernels (and cuDNN's fixed algorithm choice) for this process, or not.

    Process-wide, as torch's switches are: a run sets it before it trains, so a process that trains
    run after run (a warm worker) leaves each run the setting of its own config.
    """
    if on:
        ask_cublas_for_a_fixed_workspace()
    torch.use_deterministic_algorithms(on)
    # torch also fills every new uninitialised tensor with NaN in this mode, a debugging aid that
    # changes no correct kernel's result and costs a fill per allocation (a kernel launch each on a
    # GPU; 7 us for a 100 x 500 float32 tensor on the CPU): left off.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False if on else torch.backends.cudnn.benchmark
