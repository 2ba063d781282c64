"""Stacked seeds two ways: the backbones' own ``stacked_forward`` against ``torch.func``.

    python bench/stacking_func.py                       # 20 seeds, batch 100, MLP / CNN / feature head
    python bench/stacking_func.py --seeds 8 --rounds 11 --models mlp

The batched trainer runs S seeds of a backbone as one network: each backbone that stacks writes
``stacked_forward(params, inputs)`` (:mod:`labelemb.models.stacked_layers`: a linear layer is one
batched matrix product, a convolution one grouped convolution). ``torch.func`` offers the same
without code per backbone: ``stack_module_state`` over S copies and ``vmap`` of
``functional_call``. This times the forward and backward pass of the backbone alone (the part that
differs), S seeds at once on random inputs of the backbone's shape, both ways in alternating
rounds, and prints the median milliseconds and the ratio ``torch.func / stacked_forward``. Both
ways give the same features (checked before timing, to 1e-5).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from labelemb.models.cnn import CNN
from labelemb.models.features import FeatureHead
from labelemb.models.mlp import MLP

#: Each backbone and the shape of one example's input.
BACKBONES: dict[str, tuple[Callable[[tuple[int, ...]], nn.Module], tuple[int, ...]]] = {
    "mlp": (lambda shape: MLP(shape, hidden=(500, 500)), (1, 28, 28)),
    "cnn": (lambda shape: CNN(shape), (1, 28, 28)),
    "features": (lambda shape: FeatureHead(shape, dense=512), (1280,)),
}


def two_ways(name: str, seeds: int, batch: int) -> dict[str, Callable[[], None]]:
    """The forward and backward pass of ``seeds`` copies of backbone ``name``, both ways."""
    make, shape = BACKBONES[name]
    copies = [make(shape) for _ in range(seeds)]
    stacked, buffers = stack_module_state(copies)
    params = {key: value.detach().requires_grad_() for key, value in stacked.items()}
    template = make(shape).to("meta")
    inputs = torch.rand(seeds, batch, *shape)

    def by_hand() -> torch.Tensor:
        return copies[0].stacked_forward(params, inputs)

    def by_func() -> torch.Tensor:
        one = lambda p, b, x: functional_call(template, (p, b), (x,))  # noqa: E731
        return vmap(one)(params, buffers, inputs)

    with torch.no_grad():
        torch.testing.assert_close(by_func(), by_hand(), rtol=1e-5, atol=1e-5)
    return {
        "stacked_forward": lambda: by_hand().sum().backward(),
        "torch.func": lambda: by_func().sum().backward(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="passes timed together in a round")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{args.seeds} seeds x batch {args.batch}, load average {os.getloadavg()[0]:.2f}"
    )
    for name in args.models:
        ways = two_ways(name, args.seeds, args.batch)
        for way in ways.values():  # warm-up
            way()
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way, run in ways.items():
                started = time.perf_counter()
                for _ in range(args.repeats):
                    run()
                seconds[way].append((time.perf_counter() - started) / args.repeats)
        medians = {way: 1000 * statistics.median(values) for way, values in seconds.items()}
        ratio = medians["torch.func"] / medians["stacked_forward"]
        print(
            f"{name:9s} stacked_forward {medians['stacked_forward']:9.2f} ms   "
            f"torch.func {medians['torch.func']:9.2f} ms   torch.func / stacked_forward {ratio:.3f}"
        )


if __name__ == "__main__":
    main()
