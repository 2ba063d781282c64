"""Extending labelemb, example 3: a backbone.

``tanh_mlp`` is a two-layer perceptron with tanh units: ``h = tanh(W2 tanh(W1 x + b1) + b2)``.
A backbone maps a batch of inputs to features ``(N, out_features)``; the method owns the output
layer. ``stacked_forward`` is the optional hook of the batched trainer (``--batched``): the same
pass for S seeds side by side, each with its own parameters. Config::

    model: {name: tanh_mlp, hidden: 64}
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from labelemb import models
from labelemb.stacking import linear


@models.register("tanh_mlp", inputs="images")
class TanhMLP(nn.Module):
    """Flatten, then two tanh layers of ``hidden`` units."""

    output_init_std = None  # the method's output layer keeps PyTorch's default initialisation

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 64) -> None:
        super().__init__()
        self.first = nn.Linear(math.prod(input_shape), hidden)
        self.second = nn.Linear(hidden, hidden)
        self.out_features = hidden

    def forward(self, images: Tensor) -> Tensor:
        """Features ``(N, hidden)`` of images ``(N, C, H, W)``."""
        return torch.tanh(self.second(torch.tanh(self.first(images.flatten(1)))))

    def stacked_forward(self, params: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Features ``(S, B, hidden)`` of images ``(S, B, C, H, W)``: row ``s`` through seed ``s``'s
        parameters, ``params[name][s]`` (every parameter stacked under its ``named_parameters`` name)."""
        x = torch.tanh(linear(images.flatten(2), params["first.weight"], params["first.bias"]))
        return torch.tanh(linear(x, params["second.weight"], params["second.bias"]))
