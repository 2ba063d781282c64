"""The CIFAR ResNets of the released code (the paper's Table 2: cifar10-resnet8, cifar100-resnet18).

They follow the common CIFAR ResNet layout (a 3x3 stem at full resolution, no max-pool, BasicBlocks,
average pooling with kernel 4) at twice the usual widths: the stem and first stage have 128 channels.

- ResNet-8: three stages of one block at 128, 256, 512 channels, strides 1, 2, 2; a 32 x 32 input
  leaves an 8 x 8 map, average-pooled by 4 to 2 x 2, so 512 * 2 * 2 = 2048 features.
- ResNet-18: four stages of two blocks at 128, 256, 512, 1024 channels, strides 1, 2, 2, 2; 4 x 4
  map, pooled to 1 x 1, so 1024 features.

The classifier is the method's output layer, initialised with PyTorch's default
(``output_init_std = None``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: the BatchNorm that follows has its own shift.
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (He et al. 2016).

    The shortcut is the identity when the shape is kept, else conv1x1(stride)-BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _conv_out(size: int, stride: int) -> int:
    # A 3x3 convolution with padding 1 (and the 1x1 shortcut) maps size to ceil(size / stride).
    return (size - 1) // stride + 1


class ResNet(nn.Module):
    """A CIFAR ResNet feature extractor: stem, stages of BasicBlocks, avg-pool(``pool``), flatten.

    ``channels[i]``, ``blocks[i]`` and ``strides[i]`` describe stage i; the stem maps the input to
    ``channels[0]``. Features: ``channels[-1] * (h // pool) * (w // pool)`` where h x w is the map
    after the last stage. Convolutions are initialised He-normal (fan-out, ReLU), BatchNorm to
    weight 1 and bias 0, as torchvision does. Accepts ``torch.channels_last`` inputs.
    """

    output_init_std = None

    def __init__(
        self,
        input_shape: tuple[int, ...],
        channels: Sequence[int] = (128, 256, 512),
        blocks: Sequence[int] = (1, 1, 1),
        strides: Sequence[int] = (1, 2, 2),
        pool: int = 4,
    ) -> None:
        super().__init__()
        channels, blocks, strides = tuple(channels), tuple(blocks), tuple(strides)
        if not (len(channels) == len(blocks) == len(strides)) or not channels:
            raise ValueError(
                f"channels, blocks and strides need one entry per stage, got {channels}, {blocks}, {strides}"
            )
        if min(channels) < 1 or min(blocks) < 1 or min(strides) < 1 or pool < 1:
            raise ValueError(
                f"channels, blocks, strides and pool must be positive, got {channels}, {blocks}, "
                f"{strides}, {pool}"
            )
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape}")
        in_channels, height, width = (int(d) for d in input_shape)
        for stride in strides:
            height, width = _conv_out(height, stride), _conv_out(width, stride)
        if height < pool or width < pool:
            raise ValueError(
                f"input {input_shape} leaves a {height} x {width} map after strides {strides}, "
                f"smaller than the pooling window {pool}"
            )

        self.stem = nn.Sequential(
            _conv3x3(in_channels, channels[0]), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)
        )
        stages = []
        width_in = channels[0]
        for width_out, n_blocks, stride in zip(channels, blocks, strides):
            layers = [BasicBlock(width_in, width_out, stride)]
            layers += [BasicBlock(width_out, width_out) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            width_in = width_out
        self.stages = nn.Sequential(*stages)
        self.pool = pool
        self.out_features = channels[-1] * (height // pool) * (width // pool)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        out = self.stages(self.stem(images))
        out = F.avg_pool2d(out, self.pool)
        # flatten, not view: a channels_last map is not contiguous in (C, H, W) order.
        return torch.flatten(out, 1)


@register("resnet8", inputs="images")
class ResNet8(ResNet):
    """The released "ResNet-8" (protocol cifar10-resnet8): 2048 features for 32 x 32 inputs."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        channels: Sequence[int] = (128, 256, 512),
        blocks: Sequence[int] = (1, 1, 1),
        strides: Sequence[int] = (1, 2, 2),
        pool: int = 4,
    ) -> None:
        super().__init__(input_shape, channels, blocks, strides, pool)


@register("resnet18", inputs="images")
class ResNet18(ResNet):
    """The released "ResNet-18" (protocol cifar100-resnet18): 1024 features for 32 x 32 inputs."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        channels: Sequence[int] = (128, 256, 512, 1024),
        blocks: Sequence[int] = (2, 2, 2, 2),
        strides: Sequence[int] = (1, 2, 2, 2),
        pool: int = 4,
    ) -> None:
        super().__init__(input_shape, channels, blocks, strides, pool)
