"""The paper's MNIST convolutional network (Section 3.1), as a feature extractor."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .init import truncated_normal_
from .registry import register
from .stacked_layers import grouped_forward


@register("cnn", inputs="images")
class CNN(nn.Module):
    """conv5x5(32)-ReLU-maxpool2, conv5x5(64)-ReLU-maxpool2, fc(1024)-ReLU -> 1024 features.

    Sun et al. (2017), Appendix E; the released code initialises every weight from a truncated
    normal with std 0.1 and biases to zero, the output layer (owned by the method) with std
    ``output_init_std`` = 0.001. Convolutions keep the spatial size ("same" padding), so a
    28 x 28 input reaches the fully connected layer as 64 x 7 x 7.
    """

    output_init_std = 0.001

    def __init__(
        self,
        input_shape: tuple[int, ...],
        channels: tuple[int, int] = (32, 64),
        hidden: int = 1024,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        in_channels, height, width = input_shape
        if height % 4 or width % 4:
            raise ValueError(
                f"the CNN pools twice by 2, so height and width must be multiples of 4, got {input_shape}"
            )
        conv1 = nn.Conv2d(in_channels, channels[0], kernel_size=5, padding=2)
        conv2 = nn.Conv2d(channels[0], channels[1], kernel_size=5, padding=2)
        fc = nn.Linear(channels[1] * (height // 4) * (width // 4), hidden)
        for layer in (conv1, conv2, fc):
            truncated_normal_(layer.weight, init_std)
            nn.init.zeros_(layer.bias)
        self.layers = nn.Sequential(
            conv1,
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv2,
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            fc,
            nn.ReLU(),
        )
        self.out_features = hidden

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)

    def stacked_forward(self, params: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Features ``(S, B, d)`` of images ``(S, B, C, H, W)``: row ``s`` through seed ``s``'s stacked
        parameters, each convolution grouped (``groups=S``); the batched trainer's hook
        (:mod:`.stacked_layers`)."""
        return grouped_forward(self.layers, params, images)
