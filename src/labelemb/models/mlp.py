"""The paper's MNIST multilayer perceptron (Appendix B), as a feature extractor."""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor, nn

from .init import truncated_normal_
from .registry import register
from .stacked_layers import grouped_forward


@register("mlp", inputs="images")
class MLP(nn.Module):
    """Flatten, then ``hidden`` fully connected ReLU layers: ``h = ReLU(W_k ... ReLU(W_1 x))``.

    The paper's model is 784-500-500 (Sun et al. 2017, Appendix B); the released code initialises
    weights from a truncated normal with std 0.1 and biases to zero, and the output layer (owned by
    the method) with std ``output_init_std`` = 0.01.
    """

    output_init_std = 0.01

    def __init__(
        self, input_shape: tuple[int, ...], hidden: tuple[int, ...] = (500, 500), init_std: float = 0.1
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("an MLP needs at least one hidden layer")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden:
            linear = nn.Linear(width, size)
            truncated_normal_(linear.weight, init_std)
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)

    def stacked_forward(self, params: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Features ``(S, B, d)`` of images ``(S, B, C, H, W)``: row ``s`` through seed ``s``'s stacked
        parameters ``params[name][s]`` (the batched trainer's hook, :mod:`.stacked_layers`)."""
        return grouped_forward(self.layers, params, images)
